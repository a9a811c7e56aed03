//! Reference document 003, Graive (PostgreSQL + ChromaDB): users, conversations,
//! messages, memory segments by tier, tool executions, checkpoints and going back to one,
//! documents, interaction events, agent metrics, semantic search inside one conversation
//! and across all, conversation statistics, archival and the retention sweep.
//! `examples/reference/003-graive/example.py` runs against a server with the real
//! all-MiniLM-L6-v2 model and event embedding on.

use serde_json::Value;

use crate::common::json;
use crate::harness::{Server, Store, model_dir, run_example};

fn str_of<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path} is not a string in {v}"))
}

fn int_of(v: &Value, path: &str) -> i64 {
    v.pointer(path)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{path} is not an integer in {v}"))
}

#[test]
fn graive_conversations_checkpoints_search_and_cleanup() {
    let model = model_dir();
    let model = model.to_str().expect("a UTF-8 model path");
    // Retention rules and the audit log need the admin scope.
    let store = Store::init("read,write,admin", &[]);
    let server = Server::start(&store, &["--model-dir", model, "--embed-events"], &[], &[]);
    let started = std::time::Instant::now();
    let s = run_example("003-graive", &server, &store, &[]);
    eprintln!("003-graive ran in {:?}", started.elapsed());

    // Conversation statistics, derived from the store by the example.
    let stats = &s["statistics"];
    assert_eq!(int_of(stats, "/total_messages"), 10, "{s}");
    assert_eq!(int_of(stats, "/tool_executions"), 6, "{s}");
    assert_eq!(int_of(stats, "/interaction_events"), 6, "{s}");
    assert_eq!(int_of(stats, "/compression_count"), 3, "{s}");
    assert_eq!(int_of(stats, "/checkpoints"), 4, "{s}");
    assert_eq!(int_of(stats, "/llm_calls"), 4, "{s}");
    assert_eq!(int_of(&s, "/segments/short"), 2);
    assert_eq!(int_of(&s, "/segments/long"), 1);
    assert!(int_of(&s, "/document/chunks") >= 2, "{s}");

    // Going back: the latest checkpoint descends from the one resumed, not the abandoned one.
    let cps = &s["checkpoints"];
    let lineage: Vec<&str> = cps["lineage"]
        .as_array()
        .expect("lineage")
        .iter()
        .map(|v| v.as_str().expect("an id"))
        .collect();
    assert_eq!(lineage.len(), 3, "{s}");
    assert_eq!(lineage[0], str_of(cps, "/latest"));
    assert_eq!(lineage[1], str_of(cps, "/resumed_from"));
    assert!(!lineage.contains(&str_of(cps, "/abandoned")));

    // The sweep removed the archived conversation and the samples past retention.
    assert!(int_of(&s, "/swept/sessions") >= 1, "{s}");
    assert!(int_of(&s, "/swept/metric_points") >= 2, "{s}");
    assert!(int_of(&s, "/swept/usage") >= 1, "{s}");
    assert_eq!(int_of(&s, "/agent_stats/sessions"), 2, "{s}");

    // Independently, through the CLI on the same store: the research chat and Bob's chat
    // are there, the archived one is gone with its events.
    let research = str_of(&s, "/conversations/research");
    let archived = str_of(&s, "/conversations/archived");
    let other = str_of(&s, "/conversations/other_user");
    let sessions = json(
        &store.data,
        &["sessions", "--kind", "conversation", "--limit", "1000"],
    );
    let ids: Vec<&str> = sessions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|x| x["id"].as_str().expect("an id"))
        .collect();
    assert!(
        ids.contains(&research) && ids.contains(&other),
        "{sessions}"
    );
    assert!(!ids.contains(&archived), "{sessions}");
    let events = json(&store.data, &["events", research, "--limit", "1000"]);
    let events = events["items"].as_array().expect("items");
    let kinds = |k: &str| events.iter().filter(|e| e["kind"] == k).count();
    assert_eq!(
        (kinds("message"), kinds("tool_call"), kinds("interaction")),
        (10, 6, 6)
    );
    // The audit log holds the sweep with its counts, and the maintenance run.
    let audit = json(&store.data, &["audit", "--limit", "1000"]);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("an action"))
        .collect();
    assert!(actions.contains(&"retention.sweep"), "{actions:?}");
    assert!(actions.contains(&"retention.set"), "{actions:?}");
    assert!(actions.contains(&"checkpoint.put"), "{actions:?}");
    let verified = json(&store.data, &["verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let status = server.stop();
    assert!(status.success(), "the server exited with {status}");
}
