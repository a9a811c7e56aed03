//! 001, the AI-first software engineering platform (PostgreSQL + Redis):
//! `examples/reference/001-engineering-platform/example.py` against a real server, then
//! an independent look at what it left in the store: the audit log through the CLI, the
//! hash chain through `verify`, and the append-only triggers under a direct UPDATE.

use std::process::Command;

use serde_json::Value;

use crate::common::{describe, json};
use crate::harness::{Server, Store, run_example};

const DIR: &str = "001-engineering-platform";

/// Every audit entry of the store, through `agentstore --json audit`, following `--after`.
fn audit_entries(store: &Store) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let after_s = after.map(|a| a.to_string());
        let mut args = vec!["audit", "--limit", "1000"];
        if let Some(a) = &after_s {
            args.extend(["--after", a]);
        }
        let page = json(&store.data, &args);
        let items = page
            .as_array()
            .or_else(|| page["items"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("audit prints a list: {page}"));
        if items.is_empty() {
            return all;
        }
        after = items.last().and_then(|e| e["seq"].as_i64());
        all.extend(items);
    }
}

#[test]
fn engineering_platform_example_runs_and_leaves_a_verifiable_audit_trail() {
    let store = Store::init("read,write,admin", &[]);
    let server = Server::start(&store, &[], &[], &[]);

    let s = run_example(DIR, &server, &store, &[]);
    assert_eq!(s["users"], 3, "{s}");
    assert_eq!(s["agents"], 3, "{s}");
    assert_eq!(s["tasks"], 5, "{s}");
    assert_eq!(s["comments"], 3, "{s}");
    assert_eq!(s["runs"], 4, "{s}");
    assert_eq!(s["bug_usage"]["calls"], 3, "{s}");
    assert_eq!(s["bug_usage"]["input_tokens"], 5200 + 3100 + 7400, "{s}");
    assert_eq!(s["bug_usage"]["output_tokens"], 900 + 650 + 2300, "{s}");
    assert_eq!(s["reviewer_success_rate"], 0.5, "{s}");
    assert_eq!(s["reviewer_cost"], 0.0577, "{s}");
    assert_eq!(
        s["evidence_credible"],
        serde_json::json!(["ev-ci-failure", "ev-idempotency"]),
        "{s}"
    );
    assert_eq!(s["audit_chain_ok"], true, "{s}");
    assert_eq!(
        s["rate_limit_decisions"],
        serde_json::json!([true, true, true, true, true, false, false]),
        "{s}"
    );
    let tokens: Vec<i64> = s["lock_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens increase: {s}"
    );

    // Independently, through the CLI: the bug task's audit trail names its creator and
    // the agent that triaged it, with the change's old and new status.
    let bug = s["bug_task"].as_str().unwrap();
    let entries = audit_entries(&store);
    let about_bug: Vec<&Value> = entries.iter().filter(|e| e["resource_id"] == bug).collect();
    assert_eq!(
        about_bug.len(),
        s["bug_feed_actions"].as_u64().unwrap() as usize
    );
    let created = about_bug
        .iter()
        .find(|e| e["action"] == "session.create")
        .expect("the task's creation is audited");
    assert_eq!(created["actor"], s["alice_actor"]);
    let triage = about_bug
        .iter()
        .find(|e| e["action"] == "session.update")
        .expect("the triage is audited");
    assert_eq!(triage["actor"], s["reviewer_actor"]);
    assert_eq!(triage["old_values"]["status"], "open");
    assert_eq!(triage["new_values"]["status"], "in_progress");
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "the log is in order");

    // The database itself refuses to change the log (triggers), whoever asks.
    let db = store.data.join("agentstore.db");
    let tamper = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for sql in ("UPDATE audit_log SET actor = 'someone-else' WHERE resource_id = ?",
            "DELETE FROM audit_log WHERE resource_id = ?"):
    try:
        c.execute(sql, (sys.argv[2],))
        c.commit()
    except sqlite3.DatabaseError as e:
        print(e)
    else:
        sys.exit("the audit log accepted: " + sql)
"#;
    let o = Command::new("python3")
        .args(["-c", tamper])
        .arg(&db)
        .arg(bug)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "{}",
        describe("tamper with audit_log", &o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("the audit log is append-only").count(),
        2,
        "{}",
        describe("tamper with audit_log", &o)
    );
    let report = json(&store.data, &["verify"]);
    assert_eq!(report["ok"], true, "{report}");

    // The example is re-runnable against the same store: a second run adds its own
    // records and passes the same checks.
    let again = run_example(DIR, &server, &store, &[]);
    assert_ne!(again["run"], s["run"]);
    assert_eq!(again["bug_usage"], s["bug_usage"]);
    assert_eq!(again["rate_limit_decisions"], s["rate_limit_decisions"]);
    let tasks = json(
        &store.data,
        &["sessions", "--kind", "task", "--limit", "1000"],
    );
    let n = tasks
        .as_array()
        .or_else(|| tasks["items"].as_array())
        .map(|a| a.len())
        .unwrap_or_default();
    assert_eq!(n, 10, "five tasks per run: {tasks}");
    server.stop();
}
