use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use agentstore::backend::{EventQuery, VerifyReport};
use agentstore::time::{from_micros, now, to_micros};
use agentstore::{NewAgent, NewEvent, NewSession, Scope, Store};
use agentstore_sqlite::{OpenOptions, migrate, read_manifest, restore, verify_backup};

use crate::common::{TestStore, store};

/// A store with an agent, two sessions and a few events: several audit entries.
fn populated() -> (TestStore, String) {
    let t = store();
    let agent = t
        .store
        .put_agent(&t.scope, NewAgent::named("planner"))
        .unwrap();
    let mut ns = NewSession::new("conversation");
    ns.agent_id = Some(agent.id);
    let s = t.store.create_session(&t.scope, ns).unwrap();
    t.store
        .append_events(
            &t.scope,
            &s.id,
            vec![
                NewEvent::message("user", "hi"),
                NewEvent::message("assistant", "hello"),
                NewEvent::message("user", "bye"),
            ],
        )
        .unwrap();
    let s2 = t
        .store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    t.store
        .append_event(&t.scope, &s2.id, NewEvent::message("user", "do it"))
        .unwrap();
    (t, s.id)
}

fn db_path(t: &TestStore) -> PathBuf {
    t.dir.path().join("data").join("agentstore.db")
}

/// A raw connection with the audit log's append-only triggers removed, as an attacker
/// with file access would do.
fn tamper(t: &TestStore) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db_path(t)).unwrap();
    c.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    c
}

fn check<'a>(r: &'a VerifyReport, name: &str) -> &'a agentstore::backend::Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check named {name} in {r:?}"))
}

fn audit_count(t: &TestStore) -> u64 {
    let c = rusqlite::Connection::open(db_path(t)).unwrap();
    c.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

#[test]
fn stats_counts_rows_bytes_and_files() {
    let (t, _) = populated();
    let st = t.store.stats().unwrap();
    let rows = |e: &str| {
        st.entities
            .iter()
            .find(|x| x.entity == e)
            .unwrap_or_else(|| panic!("no entity {e}"))
            .clone()
    };
    // Every entity table, the vectors table, and the in-memory vector and keyword indexes.
    assert_eq!(st.entities.len(), 18);
    assert_eq!(rows("tenants").rows, 1);
    assert_eq!(rows("agents").rows, 1);
    assert_eq!(rows("sessions").rows, 2);
    assert_eq!(rows("events").rows, 4);
    assert_eq!(rows("memories").rows, 0);
    assert_eq!(rows("audit_log").rows, audit_count(&t));
    // Every table holds at least its root page, plus one per index.
    assert!(rows("events").bytes > rows("tenants").bytes);
    assert!(rows("memories").bytes > 0);
    assert_eq!(st.files["secret.key"], 32);
    assert!(st.files["agentstore.db"] > 0);
    assert!(st.files.contains_key("agentstore.db-wal"));
    assert!(st.files.contains_key("index/"));
    assert_eq!(st.schema_version, migrate::latest_version());
}

#[test]
fn verify_passes_on_a_populated_store() {
    let (t, _) = populated();
    let r = t.store.verify().unwrap();
    assert!(r.ok(), "{r:?}");
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "integrity",
            "foreign_keys",
            "schema",
            "audit_chain",
            "event_seq",
            "vectors",
            "vector_index"
        ]
    );
    assert!(
        check(&r, "audit_chain")
            .detail
            .starts_with(&format!("{} entries", audit_count(&t)))
    );
}

#[test]
fn verify_names_an_edited_audit_entry() {
    let (t, _) = populated();
    tamper(&t)
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap();
    let r = t.store.verify().unwrap();
    assert!(!r.ok());
    let c = check(&r, "audit_chain");
    assert!(!c.ok);
    assert!(
        c.detail.contains("seq 3") && c.detail.contains("modified"),
        "{c:?}"
    );
    assert!(check(&r, "integrity").ok);
}

#[test]
fn verify_names_a_deleted_audit_entry() {
    let (t, _) = populated();
    tamper(&t)
        .execute("DELETE FROM audit_log WHERE seq = 2", [])
        .unwrap();
    let r = t.store.verify().unwrap();
    let c = check(&r, "audit_chain");
    assert!(!c.ok);
    assert!(
        c.detail.contains("seq 3 found where seq 2 was expected"),
        "{c:?}"
    );
}

#[test]
fn verify_names_reordered_audit_entries() {
    let (t, _) = populated();
    tamper(&t)
        .execute_batch(
            "UPDATE audit_log SET seq = -1 WHERE seq = 2;
             UPDATE audit_log SET seq = 2 WHERE seq = 3;
             UPDATE audit_log SET seq = 3 WHERE seq = -1;",
        )
        .unwrap();
    let r = t.store.verify().unwrap();
    let c = check(&r, "audit_chain");
    assert!(!c.ok);
    assert!(c.detail.contains("audit entry seq 2"), "{c:?}");
}

#[test]
fn verify_reports_broken_event_numbering_and_references() {
    let (t, sid) = populated();
    let c = rusqlite::Connection::open(db_path(&t)).unwrap();
    c.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO events (tenant_id, id, session_id, seq, kind, created_at)
             VALUES ('t1', 'gap', '{sid}', 7, 'message', 0);
         INSERT INTO events (tenant_id, id, session_id, seq, kind, created_at)
             VALUES ('t1', 'orphan', 'nosuch', 1, 'message', 0);"
    ))
    .unwrap();
    let r = t.store.verify().unwrap();
    let seq = check(&r, "event_seq");
    assert!(!seq.ok);
    assert!(seq.detail.contains(&format!("session '{sid}'")), "{seq:?}");
    let fk = check(&r, "foreign_keys");
    assert!(!fk.ok);
    assert!(
        fk.detail.contains("events") && fk.detail.contains("sessions"),
        "{fk:?}"
    );
    assert!(check(&r, "audit_chain").ok);
}

fn events_of(store: &Store, scope: &Scope, sid: &str) -> Vec<String> {
    store
        .list_events(
            scope,
            EventQuery {
                session_id: sid.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.content.unwrap_or_default())
        .collect()
}

#[test]
fn backup_while_writers_append_is_consistent() {
    let (t, _) = populated();
    let out = t.dir.path().join("backup");
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let manifest = std::thread::scope(|sc| {
        sc.spawn(|| {
            // Each round creates a session and then appends to it in a later transaction,
            // so a backup that mixed two snapshots could hold events whose session or
            // earlier events are missing.
            while !stop.load(Ordering::Relaxed) {
                let s = t
                    .store
                    .create_session(&t.scope, NewSession::new("task"))
                    .unwrap();
                for i in 0..5 {
                    t.store
                        .append_event(&t.scope, &s.id, NewEvent::message("user", format!("{i}")))
                        .unwrap();
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
        });
        while written.load(Ordering::Relaxed) < 3 {
            std::thread::yield_now();
        }
        let m = t.store.backup(&out);
        let during = written.load(Ordering::Relaxed);
        // Keep writing a little after the backup, then stop.
        while written.load(Ordering::Relaxed) < during + 2 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        m
    })
    .unwrap();

    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["agentstore.db", "secret.key"]);
    assert_eq!(manifest.format, 1);
    assert_eq!(manifest.backend, "sqlite");
    assert_eq!(manifest.schema_version, migrate::latest_version());
    assert_eq!(read_manifest(&out).unwrap(), manifest);
    let r = verify_backup(&out).unwrap();
    assert!(r.ok(), "{r:?}");
    for name in ["manifest", "files", "integrity", "audit_chain", "event_seq"] {
        assert!(check(&r, name).ok);
    }
    // A single file in rollback-journal mode: nothing appears beside it when opened.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["agentstore.db", "manifest.json", "secret.key"]);

    let c = rusqlite::Connection::open_with_flags(
        out.join("agentstore.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let orphans: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM events e LEFT JOIN sessions s
                 ON s.tenant_id = e.tenant_id AND s.id = e.session_id WHERE s.id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    // Rounds finished before the backup are all there; the store went on growing after.
    let in_backup: i64 = c
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let live = t.store.stats().unwrap().entities[3].rows as i64;
    assert!(in_backup >= 2 + 3, "{in_backup}");
    assert!(live > in_backup, "{live} {in_backup}");
}

#[test]
fn restore_into_a_new_directory_reads_back() {
    let (t, sid) = populated();
    let out = t.dir.path().join("backup");
    t.store.backup(&out).unwrap();
    let target = t.dir.path().join("restored");
    let m = restore(&out, &target, false).unwrap();
    assert_eq!(m, read_manifest(&out).unwrap());
    assert!(target.join("index").is_dir());
    // No temporary or aside directory is left beside the target.
    let leftovers: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let restored = agentstore_sqlite::open(&OpenOptions::new(&target)).unwrap();
    assert_eq!(events_of(&restored, &t.scope, &sid), ["hi", "hello", "bye"]);
    assert_eq!(
        restored.get_session(&t.scope, &sid).unwrap(),
        t.store.get_session(&t.scope, &sid).unwrap()
    );
    // The secret came along: the same external id hashes the same way.
    assert_eq!(
        restored.subject_hash("t1", "alice@example.com"),
        t.store.subject_hash("t1", "alice@example.com")
    );
    assert!(restored.verify().unwrap().ok());
    restored
        .append_event(&t.scope, &sid, NewEvent::message("user", "after restore"))
        .unwrap();
    drop(restored);

    // A non-empty target is refused without force and replaced with it.
    let e = restore(&out, &target, false).unwrap_err();
    assert_eq!(e.code(), "already_exists");
    restore(&out, &target, true).unwrap();
    let again = agentstore_sqlite::open(&OpenOptions::new(&target)).unwrap();
    assert_eq!(events_of(&again, &t.scope, &sid).len(), 3);

    // An existing empty directory is a valid target.
    let empty = t.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    restore(&out, &empty, false).unwrap();
    assert!(empty.join("agentstore.db").is_file());
}

fn flip_last_byte(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let n = b.len();
    b[n - 1] ^= 0xff;
    std::fs::write(p, b).unwrap();
}

#[test]
fn tampered_backups_fail_verification_and_restore() {
    let (t, _) = populated();
    let out = t.dir.path().join("backup");
    t.store.backup(&out).unwrap();
    assert!(verify_backup(&out).unwrap().ok());
    let target = t.dir.path().join("restored");

    flip_last_byte(&out.join("secret.key"));
    let r = verify_backup(&out).unwrap();
    let files = check(&r, "files");
    assert!(!files.ok);
    assert!(
        files
            .detail
            .contains("secret.key does not match its SHA-256"),
        "{files:?}"
    );
    let e = restore(&out, &target, false).unwrap_err();
    assert_eq!(e.code(), "corrupt");
    assert!(e.to_string().contains("'files' check"), "{e}");
    assert!(!target.exists());
    flip_last_byte(&out.join("secret.key"));
    assert!(verify_backup(&out).unwrap().ok());

    // An unlisted file is reported.
    std::fs::write(out.join("extra.txt"), b"x").unwrap();
    let r = verify_backup(&out).unwrap();
    assert!(
        check(&r, "files")
            .detail
            .contains("extra.txt is not listed")
    );
    std::fs::remove_file(out.join("extra.txt")).unwrap();

    // A database edited after the backup: size still matches, the hash does not.
    let db = out.join("agentstore.db");
    let mut b = std::fs::read(&db).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x01;
    std::fs::write(&db, &b).unwrap();
    let r = verify_backup(&out).unwrap();
    assert!(!r.ok());
    assert!(check(&r, "files").detail.contains("agentstore.db"));
    assert_eq!(restore(&out, &target, false).unwrap_err().code(), "corrupt");
    b[at] ^= 0x01;
    std::fs::write(&db, &b).unwrap();

    // Without its manifest a directory is an incomplete backup.
    std::fs::rename(out.join("manifest.json"), out.join("m.bak")).unwrap();
    let r = verify_backup(&out).unwrap();
    assert!(!check(&r, "manifest").ok);
    assert_eq!(read_manifest(&out).unwrap_err().code(), "corrupt");
    assert_eq!(restore(&out, &target, false).unwrap_err().code(), "corrupt");
    std::fs::rename(out.join("m.bak"), out.join("manifest.json")).unwrap();

    // A manifest naming a file outside the backup is refused before anything is read.
    let mut m = read_manifest(&out).unwrap();
    m.files[1].path = "../secret.key".into();
    std::fs::write(out.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let r = verify_backup(&out).unwrap();
    let c = check(&r, "manifest");
    assert!(!c.ok && c.detail.contains("../secret.key"), "{c:?}");
    assert_eq!(restore(&out, &target, false).unwrap_err().code(), "corrupt");
    assert!(!target.exists());
}

#[test]
fn path_traversal_and_occupied_targets_are_refused() {
    let (t, _) = populated();
    let base = t.dir.path();
    let sneaky = base.join("x").join("..").join("backup");
    let e = t.store.backup(&sneaky).unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(!base.join("backup").exists());

    let out = base.join("backup");
    t.store.backup(&out).unwrap();
    assert_eq!(t.store.backup(&out).unwrap_err().code(), "already_exists");
    let file = base.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(t.store.backup(&file).unwrap_err().code(), "invalid_input");

    assert_eq!(
        restore(&out, &base.join("y").join("..").join("restored"), false)
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        restore(
            &base.join("y").join("..").join("backup"),
            &base.join("r"),
            false
        )
        .unwrap_err()
        .code(),
        "invalid_input"
    );
    assert_eq!(
        verify_backup(&base.join("y/../backup")).unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        restore(&out, &file, true).unwrap_err().code(),
        "invalid_input"
    );
    assert!(!base.join("restored").exists() && !base.join("r").exists());

    // A backup inside the data directory would copy itself; a restore over its own
    // backup would destroy its source.
    let inside = base.join("data").join("index").join("bk");
    assert_eq!(t.store.backup(&inside).unwrap_err().code(), "invalid_input");
    assert!(!inside.exists());
    assert_eq!(
        restore(&out, &out, true).unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        restore(&out, &out.join("inner"), false).unwrap_err().code(),
        "invalid_input"
    );
    assert!(verify_backup(&out).unwrap().ok());
}

#[test]
fn maintenance_sweeps_expired_records_and_vacuum_shrinks() {
    let (t, live) = populated();
    let past = from_micros(to_micros(&now()) - 3_600_000_000);
    let big = "x".repeat(4000);
    for _ in 0..20 {
        let mut ns = NewSession::new("task");
        ns.expires_at = Some(past);
        let s = t.store.create_session(&t.scope, ns).unwrap();
        let evs = (0..25)
            .map(|_| NewEvent::message("user", big.clone()))
            .collect();
        t.store.append_events(&t.scope, &s.id, evs).unwrap();
    }
    let before = t.store.stats().unwrap();
    let rep = t.store.maintenance(true).unwrap();
    assert_eq!(rep.swept.sessions, 20);
    assert_eq!(rep.swept.events, 500);
    assert!(
        rep.bytes_after < rep.bytes_before / 2,
        "{} -> {}",
        rep.bytes_before,
        rep.bytes_after
    );
    let steps: Vec<&str> = rep
        .steps
        .iter()
        .map(|s| s.split(':').next().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "sweep",
            "fulltext",
            "optimize",
            "checkpoint",
            "vacuum",
            "checkpoint",
            "vectors",
            "keyword index"
        ]
    );
    let after = t.store.stats().unwrap();
    assert_eq!(after.entities[3].rows, before.entities[3].rows - 20);
    // Compare database and log together: before maintenance most pages may still sit
    // in the WAL (it is checkpointed only every 64 MiB).
    let on_disk =
        |s: &agentstore::backend::Stats| s.files["agentstore.db"] + s.files["agentstore.db-wal"];
    assert!(on_disk(&after) < on_disk(&before));
    assert_eq!(after.files["agentstore.db-wal"], 0);
    // The live session is untouched and the store still verifies.
    assert_eq!(events_of(&t.store, &t.scope, &live).len(), 3);
    assert!(t.store.verify().unwrap().ok());
}
