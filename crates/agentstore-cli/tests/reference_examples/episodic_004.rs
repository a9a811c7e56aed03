//! Reference document 004, episodic memory (libSQL + redb): episodes with steps, patterns
//! with success rate and usage count, retrieval by domain and time with diverse results
//! (MMR), full-text search, a TTL cache, and backup / verify / restore through the CLI.
//! `examples/reference/004-episodic-memory/example.py` runs against a server with the
//! real all-MiniLM-L6-v2 model and event embedding on.

use std::path::Path;

use serde_json::Value;

use crate::common::json;
use crate::harness::{Server, Store, model_dir, run_example};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v.as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn episodes_patterns_diverse_retrieval_cache_and_backup() {
    let model = model_dir();
    let model = model.to_str().expect("a UTF-8 model path");
    let store = Store::init("read,write", &[]);
    let server = Server::start(&store, &["--model-dir", model, "--embed-events"], &[], &[]);
    let started = std::time::Instant::now();
    let s = run_example("004-episodic-memory", &server, &store, &[]);
    eprintln!("004-episodic-memory ran in {:?}", started.elapsed());

    assert_eq!(s["episodes"], 9, "{s}");
    assert_eq!(s["steps"], 23, "{s}");
    assert_eq!(s["recent_web_api"], 5, "{s}");
    assert_eq!(s["patterns"], 5, "{s}");
    assert_eq!(s["top_pattern"]["usage_count"], 3, "{s}");
    assert_eq!(s["top_pattern"]["success_rate"], 0.88, "{s}");
    assert_eq!(s["cache"]["hits"], 7, "{s}");
    assert_eq!(s["cache"]["misses"], 5, "{s}");
    // Without MMR the three near-duplicate flaky-test episodes fill the top three; with
    // it, another kind of episode comes in.
    let plain = ids(&s["similar"]["plain"]);
    let mmr = ids(&s["similar"]["mmr"]);
    assert_eq!(plain.len(), 3, "{s}");
    assert!(
        !s["similar"]["mmr_new"]
            .as_array()
            .expect("mmr_new")
            .is_empty(),
        "{s}"
    );
    assert!(mmr.iter().any(|id| !plain.contains(id)), "{s}");

    // The live store, read through the CLI: every episode but the deleted one, and its
    // steps are gone with it.
    let episodes = ids(&s["episode_ids"]);
    assert_eq!(episodes.len(), 8, "{s}");
    let deleted = s["deleted_episode"].as_str().expect("an id");
    let live = json(
        &store.data,
        &["sessions", "--kind", "episode", "--limit", "1000"],
    );
    let live: Vec<&str> = live["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|x| x["id"].as_str().expect("an id"))
        .collect();
    for id in &episodes {
        assert!(live.contains(&id.as_str()), "{id} missing from {live:?}");
    }
    assert!(!live.contains(&deleted));

    // The backup the example took verifies on its own, and the store it restored holds
    // the same episodes, each with the same events as the live store.
    let backup = Path::new(s["backup"]["dir"].as_str().expect("a backup dir"));
    let restored = Path::new(s["restored_dir"].as_str().expect("a restored dir"));
    let checked = json(
        &store.data,
        &["verify", "--backup", backup.to_str().expect("utf-8")],
    );
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(json(restored, &["verify"])["ok"], true);
    for id in &episodes {
        let a = json(&store.data, &["events", id, "--limit", "1000"]);
        let b = json(restored, &["events", id, "--limit", "1000"]);
        assert_eq!(a["items"], b["items"], "events of {id}");
        assert!(!a["items"].as_array().expect("items").is_empty());
    }
    let audit = json(restored, &["audit", "--limit", "1000"]);
    assert!(
        audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["action"] == "store.restore"),
        "{audit}"
    );
    let status = server.stop();
    assert!(status.success(), "the server exited with {status}");
    // The example's backup and restored store live in a temporary directory of its own.
    if let Some(work) = backup.parent() {
        let _ = std::fs::remove_dir_all(work);
    }
}
