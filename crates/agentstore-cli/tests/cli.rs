//! Runs the real `agentstore` binary against stores in temporary directories.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use agentstore::Record;
use serde_json::Value;

use common::{cli, describe, describe_args, fails, json, ok, run};

/// The schema version this build migrates to.
fn latest() -> i64 {
    agentstore_sqlite::migrate::latest_version()
}

/// A store with a session of two events and a memory.
fn populated(dir: &Path) -> (PathBuf, String) {
    let data = dir.join("a");
    ok(&data, &["init"]);
    let session = json(
        &data,
        &[
            "session",
            "create",
            "conversation",
            "--title",
            "support chat",
        ],
    );
    let sid = session["id"].as_str().expect("session id").to_owned();
    ok(
        &data,
        &[
            "event", "append", &sid, "--kind", "message", "--role", "user", "hello",
        ],
    );
    ok(
        &data,
        &[
            "event",
            "append",
            &sid,
            "--kind",
            "message",
            "--role",
            "assistant",
            "hi, how can I help?",
        ],
    );
    ok(
        &data,
        &[
            "remember",
            "User's timezone is CET",
            "--key",
            "timezone",
            "--kind",
            "preference",
            "--namespace",
            "app/u1",
        ],
    );
    (data, sid)
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample/sample.jsonl")
}

#[test]
fn init_writes_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let out = ok(&data, &["init"]);
    assert!(out.contains("tenant    default (created)"), "{out}");
    let again = json(&data, &["init"]);
    assert_eq!(again["tenant_created"], false);
    assert_eq!(again["schema_version"], latest());

    let sid = ok(
        &data,
        &["session", "create", "task", "--title", "fix the build"],
    );
    let sid = sid.trim();
    let ev = json(
        &data,
        &[
            "event",
            "append",
            sid,
            "--kind",
            "message",
            "--role",
            "user",
            "the build is red",
        ],
    );
    assert_eq!(ev["seq"], 1);
    let ev = json(
        &data,
        &[
            "event",
            "append",
            sid,
            "--kind",
            "step",
            "looking at CI logs",
        ],
    );
    assert_eq!(ev["seq"], 2);

    let listing = ok(&data, &["sessions"]);
    assert!(
        listing.contains(sid) && listing.contains("fix the build"),
        "{listing}"
    );
    let page = json(&data, &["sessions", "--kind", "task", "--limit", "5"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        json(&data, &["sessions", "--kind", "episode"])["items"],
        serde_json::json!([])
    );

    let events = json(&data, &["events", sid]);
    let seqs: Vec<i64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    let text = ok(&data, &["events", sid, "--limit", "1"]);
    assert!(
        text.contains("the build is red") && text.contains("more with a higher --limit"),
        "{text}"
    );

    // Every write records its subcommand and actor in the audit log.
    let audit = json(&data, &["audit"]);
    let entries = audit["items"].as_array().unwrap();
    let commands: Vec<&str> = entries
        .iter()
        .map(|e| e["context"]["command"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        commands,
        ["init", "session create", "event append", "event append"]
    );
    assert!(entries.iter().all(|e| e["actor"] == "cli:tester"));

    let tenants = json(&data, &["--tenant", "other", "tenants"]);
    assert_eq!(tenants.as_array().unwrap().len(), 1);
}

#[test]
fn remember_memories_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = populated(tmp.path());
    let out = ok(
        &data,
        &[
            "remember",
            "User's timezone is Europe/Lisbon",
            "--key",
            "timezone",
            "--kind",
            "preference",
            "--namespace",
            "app/u1",
        ],
    );
    assert!(out.contains("superseding"), "{out}");
    let dup = json(&data, &["remember", "The sky is blue"]);
    assert_eq!(dup["outcome"], "created");
    let again = json(&data, &["remember", "The sky is blue"]);
    assert_eq!(again["outcome"], "deduplicated");

    let prefs = json(
        &data,
        &["memories", "--kind", "preference", "--namespace", "app"],
    );
    let items = prefs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the current version is listed");
    assert_eq!(items[0]["content"], "User's timezone is Europe/Lisbon");
    let current = json(&data, &["memory", "key", "app/u1", "timezone"]);
    assert_eq!(current["id"], items[0]["id"]);
    let by_id = ok(&data, &["memory", "get", current["id"].as_str().unwrap()]);
    assert!(
        by_id.contains("Europe/Lisbon") && by_id.contains("(current)"),
        "{by_id}"
    );

    let stats = json(&data, &["stats"]);
    let rows = |entity: &str| {
        stats["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entity"].as_str().is_some_and(|n| n.starts_with(entity)))
            .unwrap_or_else(|| panic!("no {entity} in {stats}"))["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("tenant"), 1);
    assert_eq!(rows("session"), 1);
    assert_eq!(rows("event"), 2);
    assert_eq!(rows("memor"), 3, "two versions of the key and one fact");
    assert_eq!(stats["schema_version"], latest());
    let text = ok(&data, &["stats"]);
    assert!(
        text.contains("ENTITY") && text.contains("agentstore.db"),
        "{text}"
    );
}

#[test]
fn export_import_export_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = populated(tmp.path());
    let first = tmp.path().join("first.jsonl");
    let out = ok(&a, &["export", "--out", first.to_str().unwrap()]);
    assert!(out.starts_with("exported "), "{out}");
    let first_text = fs_err::read_to_string(&first).unwrap();
    assert_eq!(
        ok(&a, &["export"]),
        first_text,
        "stdout and --out write the same"
    );

    // Import creates the second store and brings the tenant, records and audit log along.
    let b = tmp.path().join("b");
    let report = json(&b, &["import", first.to_str().unwrap()]);
    assert_eq!(report["created_store"], true);
    assert_eq!(report["counts"]["session"], 1);
    assert_eq!(report["counts"]["event"], 2);
    assert_eq!(report["counts"]["tenant"], 1);

    let second = tmp.path().join("second.jsonl");
    ok(&b, &["export", "--out", second.to_str().unwrap()]);
    let second_text = fs_err::read_to_string(&second).unwrap();
    let (same, extra) = second_text.split_at(first_text.len());
    assert_eq!(same, first_text);
    let extra: Vec<&str> = extra.lines().collect();
    assert_eq!(extra.len(), 1, "one line more: {extra:?}");
    let line: Value = serde_json::from_str(extra[0]).unwrap();
    assert_eq!(
        (line["type"].as_str(), line["action"].as_str()),
        (Some("audit"), Some("store.import"))
    );
    assert_eq!(line["context"]["command"], "import");

    // A second import of the same records is refused and changes nothing.
    let (_, code) = fails_any(&b, &["import", first.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(ok(&b, &["export"]), second_text);

    // From stdin, into a third store.
    let c = tmp.path().join("c");
    let mut child = cli(&c)
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(first_text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe_args(&["import", "-"], &o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("from stdin"));
}

/// A failing command with any error code; returns (stderr, exit code).
fn fails_any(data: &Path, args: &[&str]) -> (String, i32) {
    let o = run(data, args);
    assert!(!o.status.success(), "{}", describe_args(args, &o));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(stderr.starts_with("error["), "{}", describe_args(args, &o));
    (stderr, o.status.code().unwrap())
}

#[test]
fn a_rejected_import_leaves_no_store_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    fs_err::write(&bad, "{\"type\":\"tenant\",\"id\":\"t\",\"name\":\"T\",\"created_at\":\"2025-01-01T00:00:00Z\"}\nnot json\n").unwrap();
    let data = tmp.path().join("new");
    let (stderr, code) = fails(&data, &["import", bad.to_str().unwrap()], "import_error");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(code, 2);
    assert!(
        !data.exists(),
        "the store created for the import was removed"
    );
}

#[test]
fn backup_verify_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, sid) = populated(tmp.path());
    let backup = tmp.path().join("backup");
    let out = ok(&a, &["backup", backup.to_str().unwrap()]);
    assert!(out.contains("agentstore.db"), "{out}");
    assert!(backup.join("manifest.json").exists());

    let out = ok(&a, &["verify", "--backup", backup.to_str().unwrap()]);
    assert!(out.contains('✓') && !out.contains('✗'), "{out}");
    let report = json(&a, &["verify"]);
    assert_eq!(report["ok"], true);
    assert!(!report["checks"].as_array().unwrap().is_empty());

    let c = tmp.path().join("c");
    let restored = json(&c, &["restore", backup.to_str().unwrap()]);
    assert_eq!(restored["manifest"]["schema_version"], latest());
    // The restored store holds the original's records and audit log, and then the
    // restore's own audit entry.
    let restored_export = ok(&c, &["export"]);
    let (head, last) = restored_export.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(format!("{head}\n"), ok(&a, &["export"]));
    assert!(last.contains("\"action\":\"store.restore\""), "{last}");
    assert!(ok(&c, &["events", &sid]).contains("how can I help"));
    // Restoring over an existing store needs --force.
    fails_any(&c, &["restore", backup.to_str().unwrap()]);
    ok(&c, &["restore", backup.to_str().unwrap(), "--force"]);

    // A damaged backup fails verification with exit code 1.
    let mut db = fs_err::OpenOptions::new()
        .append(true)
        .open(backup.join("agentstore.db"))
        .unwrap();
    db.write_all(b"tampered").unwrap();
    drop(db);
    let o = run(&a, &["verify", "--backup", backup.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        describe_args(&["verify", "--backup"], &o)
    );
}

#[test]
fn migrate_status_down_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = populated(tmp.path());
    let st = json(&data, &["migrate", "status"]);
    assert_eq!(
        (st["current"].as_i64(), st["latest"].as_i64()),
        (Some(latest()), Some(latest()))
    );
    assert!(
        st["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied")
    );

    let down = json(&data, &["migrate", "down"]);
    assert_eq!(down["rolled_back"], serde_json::json!([latest()]));
    assert_eq!(down["current"], latest() - 1);
    assert!(ok(&data, &["migrate", "status"]).contains("pending"));
    // The store refuses to open with a pending migration; that is not the user's input
    // being wrong, so the exit code is 1.
    let (stderr, code) = fails(&data, &["sessions"], "schema_pending");
    assert_eq!(code, 1);
    assert!(stderr.contains("agentstore migrate up"), "{stderr}");
    // Dropping the core tables takes --force.
    let (_, code) = fails(&data, &["migrate", "down", "--to", "0"], "invalid_input");
    assert_eq!(code, 2);

    let up = json(&data, &["migrate", "up"]);
    assert_eq!(up["applied"], serde_json::json!([latest()]));
    assert_eq!(
        json(&data, &["sessions"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(ok(&data, &["migrate", "up"]).contains("nothing to apply"));
    // Both schema changes are in the store-wide audit log, with who made them.
    let audit = json(&data, &["audit", "--all-tenants"]);
    let schema: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource_type"] == "schema")
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        schema,
        [
            ("schema.migrate_down", "cli:tester"),
            ("schema.migrate_up", "cli:tester")
        ],
        "{audit:#}"
    );
}

#[test]
fn search_memories_and_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, sid) = populated(tmp.path());
    ok(
        &data,
        &[
            "remember",
            "The deploy is running late",
            "--namespace",
            "ops",
        ],
    );

    let out = ok(&data, &["search", "timezones"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("RANK  TARGET  ID"), "{out}");
    assert!(lines[1].starts_with("1     memory"), "{out}");
    assert!(lines[1].contains("bm25 "), "{out}");
    assert!(lines[1].contains("#1, fused 0.0164"), "{out}");
    assert!(lines[1].ends_with("User's timezone is CET"), "{out}");

    let hits = json(&data, &["search", "help", "--target", "event"]);
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["target"], "event");
    assert_eq!(hits[0]["record"]["type"], "event");
    assert_eq!(hits[0]["record"]["content"], "hi, how can I help?");
    assert_eq!(hits[0]["components"]["keyword_rank"], 1);
    assert!(hits[0]["components"]["keyword"].as_f64().unwrap() > 0.0);
    assert!(hits[0]["components"]["recency"].is_null());

    let count = |args: &[&str]| json(&data, args).as_array().unwrap().len();
    assert_eq!(count(&["search", "help", "--target", "memory"]), 0);
    assert_eq!(count(&["search", "timezone runs"]), 2);
    assert_eq!(count(&["search", "timezone runs", "--namespace", "app"]), 1);
    assert_eq!(
        count(&["search", "timezone runs", "--kind", "preference"]),
        1
    );
    assert_eq!(count(&["search", "timezone runs", "--limit", "1"]), 1);
    assert_eq!(count(&["search", "hello help", "--session", &sid]), 2);
    assert_eq!(count(&["search", "hello", "--kind", "decision"]), 0);
    let recent = json(&data, &["search", "deploy", "--half-life", "3600"]);
    let r = recent[0]["components"]["recency"].as_f64().unwrap();
    assert!(r > 0.99 && r <= 1.0, "{recent}");
    // Syntax characters alone are no query and no error.
    assert_eq!(ok(&data, &["search", "\"*:("]), "(no matches)\n");

    let (_, code) = fails(&data, &["search", "x", "--half-life", "0"], "invalid_input");
    assert_eq!(code, 2);
    fails(
        &data,
        &["search", "x", "--namespace", "a//b"],
        "invalid_input",
    );
    let o = run(&data, &["search", "x", "--target", "document"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn errors_have_stable_codes_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("s");
    let (stderr, code) = fails(&data, &["sessions"], "config_error");
    assert_eq!(code, 1);
    assert!(stderr.contains("agentstore init"), "{stderr}");

    ok(&data, &["init"]);
    let (stderr, code) = fails(&data, &["events", "no-such-session"], "not_found");
    assert_eq!(
        stderr.trim_end(),
        "error[not_found]: session 'no-such-session' not found"
    );
    assert_eq!(code, 2);

    let o = run(&data, &["--json", "events", "no-such-session"]);
    assert_eq!(o.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "not_found");
    assert_eq!(
        doc["error"]["message"],
        "session 'no-such-session' not found"
    );
    assert!(o.stderr.is_empty());

    fails(&data, &["memories", "--namespace", "a//b"], "invalid_input");
    fails(
        &data,
        &["memory", "key", "a", "k", "--as-of", "last tuesday"],
        "invalid_input",
    );
    fails(&data, &["sessions", "--limit", "5000"], "invalid_input");
    fails(&data, &["--tenant", "nobody", "remember", "x"], "not_found");

    let o = run(&data, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&data, &["--json", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "usage");
    assert!(run(&data, &["--help"]).status.success());
}

#[test]
fn sample_is_in_canonical_export_form() {
    let text = fs_err::read_to_string(sample_path()).unwrap();
    for (i, line) in text.lines().enumerate() {
        let rec: Record =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", i + 1));
        assert_eq!(
            serde_json::to_string(&rec).unwrap(),
            line,
            "line {} is not written as export writes it",
            i + 1
        );
        match &rec {
            Record::Memory(m) => assert_eq!(
                m.content_hash,
                agentstore::codec::sha256_hex(m.content.as_bytes()),
                "line {}",
                i + 1
            ),
            Record::Audit(_) => panic!("line {}: the sample has no audit records", i + 1),
            _ => {}
        }
    }
    // Chunks are exactly what the engine's chunker makes of each document.
    let recs: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &recs {
        let Record::Document(d) = r else { continue };
        let expected = agentstore::text::chunk_text(
            &d.content,
            agentstore::text::ChunkOptions {
                size: d.chunk_size as usize,
                overlap: d.chunk_overlap as usize,
            },
        )
        .unwrap();
        let chunks: Vec<_> = recs
            .iter()
            .filter_map(|r| match r {
                Record::Chunk(c) if c.document_id == d.id => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(chunks.len(), expected.len(), "chunks of {}", d.id);
        for (c, e) in chunks.iter().zip(&expected) {
            assert_eq!(
                (c.start, c.end, &c.content),
                (e.start as i64, e.end as i64, &e.text)
            );
        }
    }
}

#[test]
fn sample_imports_and_exports_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let sample = sample_path();
    let report = json(&data, &["import", sample.to_str().unwrap()]);
    assert_eq!(report["counts"]["session"], 12);
    assert_eq!(report["counts"]["memory"], 41);

    let exported = ok(&data, &["export"]);
    let without_audit: Vec<&str> = exported
        .lines()
        .filter(|l| !l.starts_with("{\"type\":\"audit\""))
        .collect();
    let original = fs_err::read_to_string(&sample).unwrap();
    assert_eq!(without_audit, original.lines().collect::<Vec<_>>());

    // As-of reads of the versioned key.
    let args = |as_of: Option<&'static str>| {
        let mut v = vec![
            "--tenant",
            "demo",
            "memory",
            "key",
            "acme/users/u-ada",
            "answer-style",
        ];
        if let Some(t) = as_of {
            v.extend(["--as-of", t]);
        }
        v
    };
    assert_eq!(
        json(&data, &args(Some("2025-03-07T00:00:00Z")))["id"],
        "mem-ada-style-v1"
    );
    assert_eq!(json(&data, &args(None))["id"], "mem-ada-style-v2");
    let prefs = json(
        &data,
        &[
            "--tenant",
            "demo",
            "memories",
            "--kind",
            "preference",
            "--limit",
            "100",
        ],
    );
    assert_eq!(
        prefs["items"].as_array().unwrap().len(),
        8,
        "current preferences only"
    );
    let events = json(
        &data,
        &["--tenant", "demo", "events", "conv-01", "--limit", "5"],
    );
    assert_eq!(events["items"].as_array().unwrap().len(), 5);
    assert!(events["next"].is_string());
}

/// Rows of the first entity whose name starts with `entity`, from `stats`.
fn stat_rows(data: &Path, entity: &str) -> u64 {
    let stats = json(data, &["stats"]);
    stats["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"].as_str().is_some_and(|n| n.starts_with(entity)))
        .unwrap_or_else(|| panic!("no {entity} in {stats}"))["rows"]
        .as_u64()
        .unwrap()
}

fn chunk_hits(data: &Path, word: &str) -> Vec<Value> {
    json(data, &["search", word, "--target", "chunk"])
        .as_array()
        .unwrap()
        .clone()
}

/// A directory of each supported format, plus files that are skipped.
fn corpus(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    fs_err::create_dir_all(docs.join("sub")).unwrap();
    fs_err::create_dir_all(docs.join(".git")).unwrap();
    let write = |name: &str, text: &str| fs_err::write(docs.join(name), text).unwrap();
    write(
        "guide.md",
        "Intro line.\n\n# Installing the zephyrine tool\n\nRun the installer. Then restart.\n",
    );
    write(
        "notes.txt",
        "Notes about quokka habitats. They live on islands.",
    );
    write(
        "faq.jsonl",
        "{\"id\": \"q1\", \"title\": \"Reset\", \"text\": \"Reset your password from the login page.\"}\n\
         \n\
         {\"content\": \"Invoices are sent monthly.\", \"metadata\": {\"lang\": \"en\"}, \"doc_type\": \"faq\"}\n\
         {\"id\": 7, \"text\": \"Support answers within a day.\", \"source\": \"https://help.example/7\"}\n",
    );
    write("sub/deeper.text", "A nested document about marmots.");
    write(".hidden.md", "# Secret\n\nNot to be ingested.");
    write(".git/config.txt", "not ingested either");
    write("logo.png", "not text");
    write("empty.txt", "");
    write("blank.md", "  \n\n ");
    docs
}

#[test]
fn ingest_reingest_and_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["init"]);
    let docs = corpus(tmp.path());
    let docs_arg = docs.to_str().unwrap();

    let first = json(&data, &["ingest", docs_arg]);
    assert_eq!(first["documents"]["created"], 6, "{first:#}");
    assert_eq!(first["documents"]["replaced"], 0);
    assert_eq!(first["documents"]["unchanged"], 0);
    assert_eq!(first["files_read"], 4, "{first:#}");
    assert_eq!(first["files_skipped"], 5, "{first:#}");
    assert_eq!(first["files_seen"], 9);
    assert_eq!(first["skipped"]["hidden"], 2);
    assert_eq!(first["skipped"]["unsupported_type"], 1);
    assert_eq!(first["skipped"]["empty"], 2);
    let total_bytes: u64 = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(first["bytes_read"].as_u64(), Some(total_bytes));
    let chunks = stat_rows(&data, "chunk");
    assert_eq!(first["chunks_written"].as_u64(), Some(chunks));
    assert_eq!(stat_rows(&data, "document"), 6);

    // Files in sorted order, each with its canonical path and its documents.
    let files = first["files"].as_array().unwrap();
    let canonical = fs_err::canonicalize(&docs).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let expected: Vec<String> = ["faq.jsonl", "guide.md", "notes.txt", "sub/deeper.text"]
        .iter()
        .map(|n| canonical.join(n).to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected);
    let faq = &files[0]["documents"];
    let sources: Vec<&str> = faq
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            format!("{}#q1", expected[0]),
            format!("{}#3", expected[0]),
            format!("{}#7", expected[0]),
        ]
    );
    assert_eq!(faq[1]["line"], 3, "line numbers count blank lines");

    // Titles and types as the formats define them.
    let hit = &chunk_hits(&data, "zephyrine")[0];
    let doc_id = hit["record"]["document_id"].as_str().unwrap().to_owned();
    assert_eq!(files[1]["documents"][0]["id"], doc_id.as_str());
    assert_eq!(chunk_hits(&data, "zephyrine").len(), 1);
    let kinds = |k: &str| {
        json(&data, &["search", "page monthly day", "--kind", k])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((kinds("jsonl"), kinds("faq")), (2, 1));
    assert_eq!(chunk_hits(&data, "marmots").len(), 1);

    // Re-ingesting from another directory by a relative path changes nothing.
    let audit_before = stat_rows(&data, "audit");
    let again = cli(&data)
        .current_dir(tmp.path())
        .args(["--json", "ingest", "docs"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        describe_args(&["ingest"], &again)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["documents"]["created"], 0, "{again:#}");
    assert_eq!(again["documents"]["replaced"], 0);
    assert_eq!(again["documents"]["unchanged"], 6);
    assert_eq!(again["chunks_written"], 0);
    assert_eq!(stat_rows(&data, "chunk"), chunks);
    assert_eq!(stat_rows(&data, "audit"), audit_before, "no audit entries");

    // A changed file replaces its document and its chunks.
    fs_err::write(
        docs.join("notes.txt"),
        "Notes about wombats now. Entirely rewritten.",
    )
    .unwrap();
    let text = ok(&data, &["ingest", docs_arg]);
    assert!(
        text.starts_with("ingested 4 files (")
            && text.contains("0 documents created, 1 replaced, 5 unchanged; 1 chunks written"),
        "{text}"
    );
    assert!(
        text.contains("skipped 5 files: 2 hidden, 1 unsupported type, 2 empty"),
        "{text}"
    );
    assert!(
        chunk_hits(&data, "quokka").is_empty(),
        "old chunks are gone"
    );
    assert_eq!(chunk_hits(&data, "wombats").len(), 1);
    assert_eq!(stat_rows(&data, "document"), 6);
    assert_eq!(stat_rows(&data, "chunk"), chunks);

    // A named file is read even when hidden; --glob filters directory walks only.
    let named = json(
        &data,
        &["ingest", docs.join(".hidden.md").to_str().unwrap()],
    );
    assert_eq!(named["documents"]["created"], 1);
    let globbed = json(&data, &["ingest", docs_arg, "--glob", "sub/**/*.text"]);
    assert_eq!(globbed["files_read"], 1, "{globbed:#}");
    // faq.jsonl, guide.md, notes.txt, and the empty .txt and blank .md.
    assert_eq!(globbed["skipped"]["glob"], 5, "{globbed:#}");
}

#[test]
fn ingest_rejects_bad_input_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["init"]);
    let docs = tmp.path().join("docs");
    fs_err::create_dir_all(&docs).unwrap();
    fs_err::write(docs.join("a.txt"), "A good file that sorts first.").unwrap();
    fs_err::write(
        docs.join("b.jsonl"),
        "{\"text\": \"fine\"}\n\n{\"text\": \"broken\"\n",
    )
    .unwrap();
    let docs_arg = docs.to_str().unwrap();
    let (stderr, code) = fails(&data, &["ingest", docs_arg], "invalid_input");
    assert_eq!(code, 2);
    assert!(stderr.contains("b.jsonl line 3: "), "{stderr}");
    assert_eq!(stat_rows(&data, "document"), 0, "nothing written");
    assert_eq!(stat_rows(&data, "chunk"), 0);

    let bad = |jsonl: &str, expect: &str| {
        fs_err::write(docs.join("b.jsonl"), jsonl).unwrap();
        let (stderr, code) = fails(&data, &["ingest", docs_arg], "invalid_input");
        assert_eq!(code, 2);
        assert!(stderr.contains(expect), "{stderr}");
    };
    bad(
        "{\"id\": \"x\", \"text\": \"one\"}\n{\"id\": \"x\", \"text\": \"two\"}\n",
        "b.jsonl line 2: invalid id: the same as on line 1",
    );
    bad(
        "{\"title\": \"no text\"}\n",
        "line 1: invalid line: has neither",
    );
    bad(
        "{\"text\": \"x\", \"metadata\": [1]}\n",
        "line 1: invalid metadata",
    );
    bad(
        "{\"text\": \"  \"}\n",
        "line 1: invalid text: must not be empty",
    );
    assert_eq!(stat_rows(&data, "document"), 0);

    let (stderr, code) = fails(
        &data,
        &["ingest", tmp.path().join("nope").to_str().unwrap()],
        "not_found",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("nope"), "{stderr}");
    fs_err::write(docs.join("x.pdf"), "%PDF").unwrap();
    fails(
        &data,
        &["ingest", docs.join("x.pdf").to_str().unwrap()],
        "invalid_input",
    );
    fs_err::write(docs.join("b.jsonl"), "").unwrap();

    // Larger than max_document_bytes (32 MiB): refused by size, naming the file.
    let big = docs.join("big.txt");
    fs_err::File::create(&big)
        .unwrap()
        .set_len((32 << 20) + 1)
        .unwrap();
    let (stderr, code) = fails(&data, &["ingest", docs_arg], "too_large");
    assert_eq!(code, 2);
    assert!(stderr.contains("big.txt: document is"), "{stderr}");
    assert_eq!(stat_rows(&data, "document"), 0);
    fs_err::remove_file(&big).unwrap();

    let fine = json(&data, &["ingest", docs_arg]);
    assert_eq!(fine["documents"]["created"], 1, "{fine:#}");
}

/// `export-subject` and `erase-subject` on the sample with one session given a subject:
/// the export holds that session's events; the erasure removes them and leaves the rest.
#[test]
fn export_and_erase_a_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let mut lines: Vec<Value> = fs_err::read_to_string(sample_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let subject = serde_json::json!({
        "type": "subject", "id": "subj-ada", "tenant_id": "demo",
        "external_id_hash": "00".repeat(32), "consent": true,
        "consent_at": "2025-03-03T09:00:00Z", "age_gated": false,
        "parental_consent_at": null, "parental_consent_by": null, "retention_days": null,
        "metadata": {}, "created_at": "2025-03-03T09:00:00Z",
        "updated_at": "2025-03-03T09:00:00Z"
    });
    lines.insert(1, subject);
    let session = lines.iter_mut().find(|l| l["type"] == "session").unwrap();
    session["subject_id"] = "subj-ada".into();
    let sid = session["id"].as_str().unwrap().to_owned();
    let events = lines
        .iter()
        .filter(|l| l["type"] == "event" && l["session_id"] == sid.as_str())
        .count();
    assert!(events > 0);
    let file = tmp.path().join("with-subject.jsonl");
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    fs_err::write(&file, text.join("\n") + "\n").unwrap();
    json(&data, &["import", file.to_str().unwrap()]);

    let out = tmp.path().join("ada.json");
    let wrote = json(
        &data,
        &[
            "--tenant",
            "demo",
            "export-subject",
            "subj-ada",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(wrote["subject_id"], "subj-ada", "{wrote}");
    let export: Value = serde_json::from_str(&fs_err::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(export["sessions"][0]["id"], sid.as_str());
    assert_eq!(export["events"].as_array().unwrap().len(), events);
    let printed = json(&data, &["--tenant", "demo", "export-subject", "subj-ada"]);
    assert_eq!(printed["events"], export["events"]);
    fails(
        &data,
        &["--tenant", "demo", "export-subject", "nobody"],
        "not_found",
    );
    fails(
        &data,
        &["--tenant", "demo", "export-subject", "bad id!"],
        "invalid_input",
    );

    let erased = json(&data, &["--tenant", "demo", "erase-subject", "subj-ada"]);
    assert_eq!(erased["sessions"], 1, "{erased}");
    assert_eq!(erased["events"], events as u64);
    fails(&data, &["--tenant", "demo", "events", &sid], "not_found");
    fails(
        &data,
        &["--tenant", "demo", "erase-subject", "subj-ada"],
        "not_found",
    );
    let sessions = json(&data, &["--tenant", "demo", "sessions"]);
    assert_eq!(
        sessions["items"].as_array().unwrap().len(),
        11,
        "the others stay"
    );
    let audit = ok(&data, &["--tenant", "demo", "audit", "--limit", "1000"]);
    assert!(audit.contains("subject.erase"), "{audit}");
    ok(&data, &["verify"]);
}

/// `retention set / clear / list`, with bad input refused before anything changes.
#[test]
fn retention_rules_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    ok(&data, &["init"]);
    let set = json(
        &data,
        &["retention", "set", "memory", "30", "--kind", "fact"],
    );
    assert_eq!(set["items"][0]["entity"], "memory", "{set}");
    assert_eq!(set["items"][0]["kind"], "fact");
    assert_eq!(set["items"][0]["days"], 30);
    json(&data, &["retention", "set", "session", "7"]);
    let text = ok(&data, &["retention"]);
    assert!(
        text.contains("(every kind)") && text.contains("2 rule(s)"),
        "{text}"
    );
    fails(&data, &["retention", "set", "mood", "3"], "invalid_input");
    fails(&data, &["retention", "set", "memory", "0"], "invalid_input");
    fails(
        &data,
        &["retention", "set", "usage", "3", "--kind", "x"],
        "invalid_input",
    );
    let cleared = json(&data, &["retention", "clear", "memory", "--kind", "fact"]);
    assert_eq!(cleared["items"].as_array().unwrap().len(), 1, "{cleared}");
    let listed = json(&data, &["retention", "list"]);
    assert_eq!(listed, cleared);
    ok(&data, &["maintenance", "--no-vacuum"]);
}

/// `serve --config FILE` opens the store its `[store]` section names (relative to the
/// file), with no `--data-dir`; the flag would win over it.
#[test]
fn serve_opens_the_store_its_config_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("etc/store");
    ok(&data, &["init"]);
    let created = json(&data, &["keys", "create", "--scopes", "read"]);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let config = dir.path().join("etc/agentstore.toml");
    std::fs::write(
        &config,
        "preset = \"test\"\n[store]\ndata_dir = \"store\"\ndurability = \"normal\"\n",
    )
    .unwrap();
    let mut cmd = common::bare();
    // Run elsewhere: a relative data_dir must not be read relative to the working dir.
    cmd.current_dir(dir.path())
        .args(["serve", "--config", config.to_str().unwrap()]);
    let (mut child, base) = common::spawn_server(cmd, &dir.path().join("serve.log"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(format!("{base}/v1/memories"))
        .header("authorization", format!("Bearer {secret}"))
        .call()
        .unwrap();
    let status = r.status();
    let body = r.body_mut().read_to_string().unwrap();
    common::sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(status, 200, "the key of the configured store: {body}");
    assert!(
        !dir.path().join("agentstore-data").exists(),
        "the default store was created instead"
    );
}

/// `keys create`, then `serve --preset test` on a free port: the key works over HTTP, a
/// write is read back, SIGTERM stops the server cleanly, and the write is in the store.
#[test]
fn serve_answers_with_a_cli_key_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    ok(&data, &["init"]);
    let created = json(
        &data,
        &["keys", "create", "--scopes", "read,write", "--name", "ci"],
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ask_"));
    let listed = json(&data, &["keys", "list"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "a listing shows no secret"
    );
    fails(
        &data,
        &["keys", "create", "--scopes", "read,root"],
        "invalid_input",
    );

    // A bad config file is refused before anything starts.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nport = 1\n").unwrap();
    fails(
        &data,
        &["serve", "--config", bad.to_str().unwrap()],
        "invalid_input",
    );

    let (mut child, base) =
        common::serve(&data, &["--preset", "test"], &dir.path().join("serve.log"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health = agent.get(format!("{base}/healthz")).call().unwrap();
    assert_eq!(health.status(), 200);
    let mut r = agent
        .post(format!("{base}/v1/memories"))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .send(r#"{"content": "served over http", "kind": "fact"}"#)
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    let denied = agent.get(format!("{base}/v1/keys")).call().unwrap();
    assert_eq!(denied.status(), 401);

    common::sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
    let memories = json(&data, &["memories"]);
    assert!(
        memories.to_string().contains("served over http"),
        "{memories}"
    );

    let id = created["key"]["id"].as_str().unwrap();
    ok(&data, &["keys", "revoke", id]);
    let listed = json(&data, &["keys", "list"]);
    assert!(listed["items"][0]["revoked_at"].is_string(), "{listed}");
}

/// Field encryption from the command line: a generated master key opens the store it
/// created; no key, or another one, is refused; `keys rotate-master` re-wraps the data
/// keys so that only the new key opens the store, and is audited; `keys backup-keyring`
/// writes a copy that `keys restore-keyring` puts back after a loss, under its own key only.
#[test]
fn master_key_generate_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = |name: &str| {
        let out = common::bare()
            .args(["keys", "generate-master"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            describe("generate-master", &out)
        );
        let hex = String::from_utf8(out.stdout).unwrap();
        assert_eq!(hex.trim().len(), 64, "{hex}");
        let p = dir.path().join(name);
        std::fs::write(&p, hex).unwrap();
        p.display().to_string()
    };
    let old = key_file("old.key");
    let new = key_file("new.key");
    ok(&data, &["--master-key-file", &old, "init"]);
    assert!(data.join("keys.db").exists());
    fails(&data, &["stats"], "config_error");
    fails(&data, &["--master-key-file", &new, "stats"], "config_error");
    let rotated = json(
        &data,
        &[
            "--master-key-file",
            &old,
            "keys",
            "rotate-master",
            "--new-key-file",
            &new,
        ],
    );
    assert_eq!(rotated["data_keys"], 0, "{rotated}");
    fails(&data, &["--master-key-file", &old, "stats"], "config_error");
    let audit = json(&data, &["--master-key-file", &new, "audit"]);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "keyring.rotate_master"),
        "{audit}"
    );

    // The keyring's copy for disaster recovery, and its way back after a loss.
    let copy = dir.path().join("keyring-copy.db");
    let copy_arg = copy.display().to_string();
    fn keyring<'a>(key: &'a str, action: &'a str, flag: &'a str, file: &'a str) -> [&'a str; 6] {
        ["--master-key-file", key, "keys", action, flag, file]
    }
    let backed = json(&data, &keyring(&new, "backup-keyring", "--out", &copy_arg));
    assert_eq!(backed["data_keys"], 0, "{backed}");
    let again = keyring(&new, "backup-keyring", "--out", &copy_arg);
    fails(&data, &again, "already_exists");
    std::fs::remove_file(data.join("keys.db")).unwrap();
    let under_old = keyring(&old, "restore-keyring", "--from", &copy_arg);
    fails(&data, &under_old, "config_error");
    let restored = json(
        &data,
        &keyring(&new, "restore-keyring", "--from", &copy_arg),
    );
    assert_eq!(restored["data_keys"], 0, "{restored}");
    // The restored keyring is this store's: the old key is refused again.
    fails(&data, &["--master-key-file", &old, "stats"], "config_error");
    let audit = json(&data, &["--master-key-file", &new, "audit"]);
    for action in ["keyring.backup", "keyring.restore"] {
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action),
            "{action}: {audit}"
        );
    }
}

/// Path traversal through a directory given to `ingest`: a symlink to a file outside the
/// directory, one to the directory's parent, a `..` inside a link's target and a symlink
/// loop are skipped and named; only the directory's own file is read.
#[cfg(unix)]
#[test]
fn ingest_does_not_follow_links_out_of_the_directory() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["init"]);
    let outside = tmp.path().join("private.txt");
    std::fs::write(&outside, "the neighbour's private notes").unwrap();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("own.txt"), "a note that belongs here").unwrap();
    symlink(&outside, docs.join("escape.txt")).unwrap();
    symlink("../../private.txt", docs.join("sub/dotdot.txt")).unwrap();
    symlink("..", docs.join("sub/up")).unwrap();
    symlink(tmp.path(), docs.join("root")).unwrap();
    symlink(".", docs.join("sub/loop")).unwrap();

    let out = json(&data, &["ingest", docs.to_str().unwrap()]);
    assert_eq!(out["files_read"], 1, "{out:#}");
    assert_eq!(out["skipped"]["symlink_outside"], 3, "{out:#}");
    let hits = json(&data, &["search", "neighbour private", "--mode", "keyword"]);
    assert_eq!(hits.as_array().map(Vec::len), Some(0), "{hits:#}");
}
