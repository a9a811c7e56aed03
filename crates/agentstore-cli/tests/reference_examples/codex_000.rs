//! 000 — CODEX (SQLite + FAISS + BM25 + Redis): `examples/reference/000-codex`.
//!
//! One store with field encryption (a master key) and the real all-MiniLM-L6-v2 embedder,
//! served with a Redis that the example shuts down half-way. The example checks its own
//! answers; this test checks its summary, then what it left behind: the encrypted fields
//! are in no file of the data directory, Redis coming back is noticed, the store verifies
//! and the audit log holds the erasure without anything personal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentstore_testkit::services::Redis;
use serde_json::Value;

use crate::common::{json, ok};
use crate::harness::{Server, Store, model_dir, run_example};

/// A new master key (`keys generate-master`) in a file of `dir`.
fn master_key_file(dir: &Path) -> PathBuf {
    let hex = ok(&dir.join("unused"), &["keys", "generate-master"]);
    assert_eq!(hex.trim().len(), 64, "{hex}");
    let path = dir.join("master.key");
    std::fs::write(&path, hex).expect("write the master key");
    path
}

fn metric(base: &str, name: &str) -> f64 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let text = agent
        .get(format!("{base}/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with(&format!("{name}_")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn get(base: &str, secret: &str, path: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(format!("{base}{path}"))
        .header("authorization", &format!("Bearer {secret}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {v:#}"))
}

#[test]
fn codex_evolution_twin_rag_with_redis_outage_and_operations() {
    let keys = tempfile::tempdir().expect("temp dir");
    let key_file = master_key_file(keys.path());
    let key_path = key_file.to_str().expect("utf-8 path");
    let store = Store::init("read,write,admin", &["--master-key-file", key_path]);
    let model = model_dir();
    let model = model.to_str().expect("utf-8 path");
    let mut redis = Redis::start();
    let server = Server::start(
        &store,
        &["--master-key-file", key_path, "--model-dir", model],
        &[],
        &[("AGENTSTORE_REDIS_URL", &redis.url())],
    );

    let started = Instant::now();
    let port = redis.port().to_string();
    let summary = run_example(
        "000-codex",
        &server,
        &store,
        &[
            ("CODEX_REDIS_PORT", &port),
            ("AGENTSTORE_MASTER_KEY_FILE", key_path),
        ],
    );
    eprintln!("000-codex ran in {:?}: {summary:#}", started.elapsed());
    assert_eq!(summary["ok"], true);
    let run = s(&summary, "/run");

    // Evolution: the leaderboards, the lineage and the improving generations.
    let evo = &summary["evolution"];
    let agent = |n: &str| format!("agt-{run}-{n}");
    assert_eq!(
        evo["leaderboard_1"],
        serde_json::json!([agent("02"), agent("04"), agent("06")])
    );
    assert_eq!(
        evo["leaderboard_2"],
        serde_json::json!([agent("c1"), agent("02"), agent("04")])
    );
    assert_eq!(evo["selection_outcomes"], 8);
    assert_eq!(evo["agents"], 8);
    let mean = evo["mean_fitness"].as_array().expect("mean_fitness");
    assert!(mean[1].as_f64() > mean[0].as_f64(), "{mean:?}");

    // Digital twin.
    let twin = &summary["twin"];
    assert_eq!(
        twin["mastery_trajectory"],
        serde_json::json!([0.35, 0.58, 0.81])
    );
    assert_eq!(twin["learning_sessions"].as_array().map(Vec::len), Some(3));
    assert_eq!(twin["export_memories"], 6);

    // RAG: hybrid and vector retrieval found the right documents.
    let rag = &summary["rag"];
    assert_eq!(rag["hybrid_top_document"], rag["evolution_document"]);
    assert_eq!(rag["vector_top_document"], rag["privacy_document"]);
    assert_eq!(rag["keyword_hits_for_paraphrase"], 0);
    // The chunks' vector model, as the server lists it.
    assert_eq!(rag["vector_dimension"], 384);

    // Redis was down for everything after round 1, and nothing failed.
    assert_eq!(summary["redis"]["up"], 0.0);

    // Operations: backup, crypto-shredding in the restored copy, migrate down and up.
    let ops = &summary["operations"];
    assert_eq!(ops["shredded_code"], "key_unavailable");
    let latest = ops["schema_version"].as_i64().expect("schema_version");
    assert_eq!(
        ops["migrated"],
        serde_json::json!([[latest], [latest]]),
        "{ops:#}"
    );
    assert_eq!(ops["mia_erasure"]["memories"], 2);

    // Redis comes back: the server notices within its probe interval.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server.base, "agentstore_redis_up") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "agentstore_redis_up never returned to 1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let round = s(&summary, "/evolution/round_2");
    let (status, body) = get(
        &server.base,
        &store.secret,
        &format!("/v1/sessions/{round}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");

    // The encrypted fields are readable through the API (the example checked) but appear
    // in no file of the data directory; a clear metadata value of the same record does,
    // so the scan would have found them.
    for secret in [
        s(&summary, "/twin/ada_secret"),
        s(&summary, "/twin/mia_secret"),
    ] {
        let files = files_containing(&store.data, secret);
        assert!(files.is_empty(), "{secret:?} in clear in {files:?}");
    }
    let clear = s(&summary, "/twin/clear_marker");
    assert!(
        !files_containing(&store.data, clear).is_empty(),
        "the clear metadata {clear:?} is in no file: the scan looked in the wrong place"
    );

    // Independently, through the CLI: the store verifies, and the audit log records the
    // erasure with counts only.
    let mk = ["--master-key-file", key_path];
    let verify = json(&store.data, &[&mk[..], &["verify"]].concat());
    assert_eq!(verify["ok"], true, "{verify:#}");
    let audit = json(
        &store.data,
        &[&mk[..], &["audit", "--limit", "1000"]].concat(),
    );
    let mia = s(&summary, "/twin/mia");
    let entries = audit
        .as_array()
        .or_else(|| audit["items"].as_array())
        .expect("entries");
    let erase = entries
        .iter()
        .find(|e| e["action"] == "subject.erase" && e["resource_id"] == mia)
        .unwrap_or_else(|| panic!("no subject.erase entry for {mia}"));
    assert_eq!(erase["new_values"]["memories"], 2, "{erase:#}");
    let log = audit.to_string();
    assert!(!log.contains(s(&summary, "/twin/ada_secret")));
    assert!(!log.contains(s(&summary, "/twin/mia_secret")));

    let sessions = json(
        &store.data,
        &[
            &mk[..],
            &["sessions", "--kind", "learning", "--limit", "1000"],
        ]
        .concat(),
    );
    let sessions = sessions
        .as_array()
        .or_else(|| sessions["items"].as_array())
        .expect("sessions");
    let learning: Vec<&str> = sessions
        .iter()
        .filter_map(|x| x["id"].as_str())
        .filter(|id| id.starts_with(&format!("learn-{run}-")))
        .collect();
    assert_eq!(
        learning.len(),
        4,
        "Ada's three and Leo's one; Mia's is erased: {learning:?}"
    );

    assert!(server.stop().success());
}
