use agentstore::backend::{AuditQuery, CheckpointQuery};
use agentstore::{Error, NewCheckpoint, NewPendingWrite, NewSession, Payload, Scope, Store};
use serde_json::json;

use crate::common::store;

fn cp(session: &str, id: &str, parent: Option<&str>, state: Payload) -> NewCheckpoint {
    NewCheckpoint {
        session_id: session.into(),
        checkpoint_ns: String::new(),
        id: Some(id.into()),
        parent_id: parent.map(Into::into),
        state,
        metadata: json!({"step": id}),
    }
}

fn history(
    store: &Store,
    scope: &Scope,
    session: &str,
    before: Option<&str>,
    limit: usize,
) -> Vec<String> {
    store
        .list_checkpoints(
            scope,
            CheckpointQuery {
                session_id: session.into(),
                checkpoint_ns: String::new(),
                before: before.map(Into::into),
                limit,
            },
        )
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

fn audit_count(store: &Store, action: &str) -> usize {
    store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items
        .len()
}

#[test]
fn put_latest_by_id_history_and_replace() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("run"))
        .unwrap();
    let c1 = t
        .store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", None, Payload::Json(json!({"n": 1}))),
        )
        .unwrap();
    t.store
        .put_checkpoint(
            &t.scope,
            cp(
                &s.id,
                "c2",
                Some("c1"),
                Payload::Bytes(vec![0, 159, 146, 150]),
            ),
        )
        .unwrap();
    t.store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c3", Some("c2"), Payload::Json(json!([3]))),
        )
        .unwrap();

    let latest = t.store.get_checkpoint(&t.scope, &s.id, "", None).unwrap();
    assert_eq!(latest.id, "c3");
    assert_eq!(latest.parent_id.as_deref(), Some("c2"));
    assert_eq!(latest.state, Payload::Json(json!([3])));
    let by_id = t
        .store
        .get_checkpoint(&t.scope, &s.id, "", Some("c2"))
        .unwrap();
    assert_eq!(by_id.state, Payload::Bytes(vec![0, 159, 146, 150]));
    assert_eq!(by_id.metadata, json!({"step": "c2"}));
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "", Some("c1"))
            .unwrap(),
        c1
    );

    assert_eq!(
        history(&t.store, &t.scope, &s.id, None, 0),
        ["c3", "c2", "c1"]
    );
    assert_eq!(
        history(&t.store, &t.scope, &s.id, Some("c3"), 0),
        ["c2", "c1"]
    );
    assert_eq!(history(&t.store, &t.scope, &s.id, Some("c3"), 1), ["c2"]);
    assert!(history(&t.store, &t.scope, &s.id, Some("c1"), 0).is_empty());
    let err = t
        .store
        .list_checkpoints(
            &t.scope,
            CheckpointQuery {
                session_id: s.id.clone(),
                checkpoint_ns: String::new(),
                before: Some("nope".into()),
                limit: 10,
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "not_found");

    // Replacing c1 changes its state but neither its place in the history nor its
    // creation time, so it does not become the latest.
    t.store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", None, Payload::Json(json!({"n": 100}))),
        )
        .unwrap();
    let replaced = t
        .store
        .get_checkpoint(&t.scope, &s.id, "", Some("c1"))
        .unwrap();
    assert_eq!(replaced.state, Payload::Json(json!({"n": 100})));
    assert_eq!(replaced.created_at, c1.created_at);
    assert_eq!(
        history(&t.store, &t.scope, &s.id, None, 0),
        ["c3", "c2", "c1"]
    );
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "", None)
            .unwrap()
            .id,
        "c3"
    );

    // Checkpoint namespaces are separate histories in the same thread.
    let mut sub = cp(&s.id, "c1", None, Payload::Json(json!("sub")));
    sub.checkpoint_ns = "child".into();
    t.store.put_checkpoint(&t.scope, sub).unwrap();
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "child", None)
            .unwrap()
            .state,
        Payload::Json(json!("sub"))
    );
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "", None)
            .unwrap()
            .id,
        "c3"
    );

    // 3 puts, 1 replace, 1 in the child namespace; the state itself never reaches the log.
    assert_eq!(audit_count(&t.store, "checkpoint.put"), 5);
    let entry = t
        .store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some("checkpoint.put".into()),
            resource_id: Some("c2".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .items
        .remove(0);
    assert_eq!(entry.new_values.unwrap()["state"]["redacted"], json!(true));

    // Deleting the thread removes its checkpoints.
    t.store.delete_session(&t.scope, &s.id).unwrap();
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn pending_writes_are_ordered_and_replaced() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("run"))
        .unwrap();
    t.store
        .put_checkpoint(&t.scope, cp(&s.id, "c1", None, Payload::Json(json!({}))))
        .unwrap();
    let w = |task: &str, idx: i64, v: Payload| NewPendingWrite {
        task_id: task.into(),
        idx,
        channel: format!("ch-{task}"),
        value: v,
    };
    let n = t
        .store
        .put_pending_writes(
            &t.scope,
            &s.id,
            "",
            "c1",
            vec![
                w("b", 0, Payload::Json(json!("b0"))),
                w("a", 1, Payload::Bytes(b"a1".to_vec())),
                w("a", 0, Payload::Json(json!("a0"))),
            ],
        )
        .unwrap();
    assert_eq!(n, 3);
    let got = t.store.pending_writes(&t.scope, &s.id, "", "c1").unwrap();
    let keys: Vec<(&str, i64)> = got.iter().map(|w| (w.task_id.as_str(), w.idx)).collect();
    assert_eq!(keys, [("a", 0), ("a", 1), ("b", 0)]);
    assert_eq!(got[1].value, Payload::Bytes(b"a1".to_vec()));
    assert_eq!(got[2].channel, "ch-b");

    // Same (task, idx) replaces the value instead of adding a row.
    let n = t
        .store
        .put_pending_writes(
            &t.scope,
            &s.id,
            "",
            "c1",
            vec![w("a", 0, Payload::Json(json!({"again": true})))],
        )
        .unwrap();
    assert_eq!(n, 1);
    let got = t.store.pending_writes(&t.scope, &s.id, "", "c1").unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].value, Payload::Json(json!({"again": true})));
    assert_eq!(audit_count(&t.store, "checkpoint.writes"), 2);

    // Replacing the checkpoint keeps its pending writes.
    t.store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", None, Payload::Json(json!({"v": 2}))),
        )
        .unwrap();
    assert_eq!(
        t.store
            .pending_writes(&t.scope, &s.id, "", "c1")
            .unwrap()
            .len(),
        3
    );

    // Writes against a checkpoint that does not exist are refused, the batch as a whole.
    let err = t
        .store
        .put_pending_writes(
            &t.scope,
            &s.id,
            "",
            "c9",
            vec![w("x", 0, Payload::Json(json!(1)))],
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "checkpoint", ref id } if id == "c9"));
    assert_eq!(
        t.store
            .pending_writes(&t.scope, &s.id, "", "c9")
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(audit_count(&t.store, "checkpoint.writes"), 2);
}

#[test]
fn unknown_references_and_bad_input_are_refused() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("run"))
        .unwrap();
    let err = t
        .store
        .put_checkpoint(&t.scope, cp("ghost", "c1", None, Payload::Json(json!({}))))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "session", ref id } if id == "ghost"));
    let err = t
        .store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", Some("c0"), Payload::Json(json!({}))),
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "checkpoint", ref id } if id == "c0"));
    let err = t
        .store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", Some("c1"), Payload::Json(json!({}))),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    let err = t
        .store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "bad id", None, Payload::Json(json!({}))),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    let mut bad_meta = cp(&s.id, "c1", None, Payload::Json(json!({})));
    bad_meta.metadata = json!([1]);
    assert_eq!(
        t.store
            .put_checkpoint(&t.scope, bad_meta)
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    // Nothing of the refused puts was stored or audited.
    assert!(history(&t.store, &t.scope, &s.id, None, 0).is_empty());
    assert_eq!(audit_count(&t.store, "checkpoint.put"), 0);
    assert_eq!(
        t.store
            .get_checkpoint(&t.scope, &s.id, "", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn checkpoints_are_confined_to_their_tenant() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("run"))
        .unwrap();
    t.store
        .put_checkpoint(
            &t.scope,
            cp(&s.id, "c1", None, Payload::Json(json!({"secret": 1}))),
        )
        .unwrap();
    t.store
        .put_pending_writes(
            &t.scope,
            &s.id,
            "",
            "c1",
            vec![NewPendingWrite {
                task_id: "t".into(),
                idx: 0,
                channel: "c".into(),
                value: Payload::Json(json!(1)),
            }],
        )
        .unwrap();
    let other = t.other_tenant();
    assert_eq!(
        t.store
            .get_checkpoint(&other, &s.id, "", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(history(&t.store, &other, &s.id, None, 0).is_empty());
    assert_eq!(
        t.store
            .pending_writes(&other, &s.id, "", "c1")
            .unwrap_err()
            .code(),
        "not_found"
    );
    // Writing into another tenant's thread looks exactly like writing into a missing one.
    let err = t
        .store
        .put_checkpoint(&other, cp(&s.id, "c2", None, Payload::Json(json!({}))))
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let err = t
        .store
        .put_pending_writes(
            &other,
            &s.id,
            "",
            "c1",
            vec![NewPendingWrite {
                task_id: "t".into(),
                idx: 0,
                channel: "c".into(),
                value: Payload::Json(json!("overwrite")),
            }],
        )
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(
        t.store.pending_writes(&t.scope, &s.id, "", "c1").unwrap()[0].value,
        Payload::Json(json!(1))
    );
}
