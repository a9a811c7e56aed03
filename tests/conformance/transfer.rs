//! Transfer: a JSON Lines export imported into an empty store reproduces every line;
//! audit records only go into an empty log and are checked on the way in; import errors
//! name the line and change nothing; random stores round-trip.

use std::collections::BTreeMap;

use agentstore::backend::{RetentionEntity, WriteOp};
use agentstore::search::{SearchRequest, Target};
use agentstore::{
    Embedding, NewAgent, NewCheckpoint, NewDocument, NewEvent, NewMemory, NewMetricPoint,
    NewPendingWrite, NewSession, NewSubject, NewUsage, Payload, Scope, Store,
};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{empty_store, store};

fn export(s: &Store) -> Vec<String> {
    let mut buf = Vec::new();
    let n = s.export_jsonl(&mut buf, &mut |_| {}).unwrap();
    let lines: Vec<String> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(n as usize, lines.len());
    lines
}

fn import(s: &Store, lines: &[String]) -> agentstore::Result<agentstore::backend::ImportReport> {
    let text = lines.join("\n") + "\n";
    s.import_jsonl(
        &Scope::new("admin", "importer"),
        &mut text.as_bytes(),
        &mut |_| {},
    )
}

fn type_of(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Exports `src`, imports into a fresh empty store, exports that and checks the lines
/// are the same plus one `store.import` audit entry after the source's audit entries
/// (and before the vector lines, which come last).
fn assert_round_trip(src: &Store) {
    let a = export(src);
    let (dst, _dir) = empty_store();
    assert!(export(&dst).is_empty());
    let report = import(&dst, &a).unwrap();
    assert_eq!(report.lines, a.len() as u64);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for l in &a {
        *expected.entry(type_of(l)).or_default() += 1;
    }
    assert_eq!(report.counts, expected);
    let b = export(&dst);
    assert_eq!(b.len(), a.len() + 1);
    let split = a
        .iter()
        .position(|l| type_of(l).starts_with("vector"))
        .unwrap_or(a.len());
    assert_eq!(b[..split], a[..split]);
    assert_eq!(b[split + 1..], a[split..]);
    let last: serde_json::Value = serde_json::from_str(&b[split]).unwrap();
    assert_eq!(last["type"], "audit");
    assert_eq!(last["action"], "store.import");
    assert_eq!(last["tenant_id"], serde_json::Value::Null);
    assert_eq!(last["new_values"], serde_json::to_value(&expected).unwrap());
    let v = dst.verify().unwrap();
    assert!(v.ok(), "{v:?}");
}

/// One of every entity, with references between them.
fn every_entity(s: &Store, scope: &Scope) {
    let subject = s
        .create_subject(
            scope,
            NewSubject {
                external_id: "alice@example.com".into(),
                consent: true,
                metadata: json!({"plan": "pro"}),
                ..Default::default()
            },
        )
        .unwrap();
    let agent = s.put_agent(scope, NewAgent::named("planner")).unwrap();
    let mut ns = NewSession::new("conversation");
    ns.id = Some("s1".into());
    ns.agent_id = Some(agent.id.clone());
    ns.subject_id = Some(subject.id.clone());
    ns.metadata = json!({"channel": "web"});
    let parent = s.create_session(scope, ns).unwrap();
    let mut child = NewSession::new("task");
    child.parent_id = Some(parent.id.clone());
    let child = s.create_session(scope, child).unwrap();
    let mut tool = NewEvent {
        kind: "tool_call".into(),
        tool_name: Some("search".into()),
        parameters: Some(json!({"q": "rust", "n": 3})),
        result: Some(json!(["a", "b"])),
        success: Some(true),
        duration_ms: Some(12),
        cost: Some(0.125),
        ..Default::default()
    };
    tool.tokens = Some(40);
    s.append_events(
        scope,
        &parent.id,
        vec![NewEvent::message("user", "hi"), tool],
    )
    .unwrap();
    s.append_event(scope, &child.id, NewEvent::message("assistant", "ok"))
        .unwrap();
    let mut m = NewMemory::new("likes tea");
    m.key = Some("drink".into());
    m.subject_id = Some(subject.id.clone());
    m.tags = vec!["pref".into()];
    s.remember(scope, m.clone()).unwrap();
    m.content = "likes coffee".into();
    s.remember(scope, m).unwrap();
    s.remember(
        scope,
        NewMemory {
            // Exact in f32 and not in JSON's shortest f64 form: a lossy codec shows.
            vector: Some(vec![0.1, -2.5e-7, 3.0, 0.333_333_34]),
            ..NewMemory::new("the sky is blue")
        },
    )
    .unwrap();
    let mut d = NewDocument::new("First paragraph.\n\nSecond paragraph with more words.");
    d.title = Some("notes".into());
    d.chunking.size = 20;
    d.chunking.overlap = 5;
    let doc = s.put_document(scope, d).unwrap();
    let chunk = s.list_chunks(scope, doc.id()).unwrap().remove(0);
    s.write(
        scope,
        vec![WriteOp::PutVectors {
            target: Target::Chunk,
            items: vec![(
                chunk.id,
                Embedding {
                    model: "external-4d".into(),
                    vector: vec![1.0, 0.5, -0.25, 1e-3],
                },
            )],
        }],
    )
    .unwrap();
    let cp = s
        .put_checkpoint(
            scope,
            NewCheckpoint {
                session_id: parent.id.clone(),
                checkpoint_ns: String::new(),
                id: Some("c1".into()),
                parent_id: None,
                state: Payload::Json(json!({"step": 1})),
                metadata: json!({}),
            },
        )
        .unwrap();
    s.put_checkpoint(
        scope,
        NewCheckpoint {
            session_id: parent.id.clone(),
            checkpoint_ns: String::new(),
            id: Some("c2".into()),
            parent_id: Some(cp.id.clone()),
            state: Payload::Bytes(vec![0, 1, 2, 255]),
            metadata: json!({"source": "loop"}),
        },
    )
    .unwrap();
    s.put_checkpoint(
        scope,
        NewCheckpoint {
            session_id: child.id.clone(),
            checkpoint_ns: "inner".into(),
            id: None,
            parent_id: None,
            state: Payload::Json(json!(null)),
            metadata: json!({}),
        },
    )
    .unwrap();
    s.put_pending_writes(
        scope,
        &parent.id,
        "",
        &cp.id,
        vec![NewPendingWrite {
            task_id: "t".into(),
            idx: 0,
            channel: "messages".into(),
            value: Payload::Bytes(vec![9, 8]),
        }],
    )
    .unwrap();
    s.record_usage(
        scope,
        vec![NewUsage {
            id: None,
            session_id: Some(parent.id.clone()),
            agent_id: Some(agent.id.clone()),
            provider: "openai".into(),
            model: "gpt".into(),
            operation: Some("chat".into()),
            input_tokens: 10,
            output_tokens: 5,
            estimated_cost: Some(0.01),
            actual_cost: None,
            latency_ms: Some(120.5),
            quality_score: None,
            success: true,
            metadata: json!({}),
            created_at: None,
        }],
    )
    .unwrap();
    s.record_metrics(
        scope,
        vec![NewMetricPoint {
            name: "latency".into(),
            labels: [("model".to_owned(), "gpt".to_owned())].into(),
            // Needs serde_json's float_roundtrip: its default parser is off by one
            // ulp on values like this one (found by the property test below).
            value: 515827.76528723084,
            at: None,
        }],
    )
    .unwrap();
    s.kv_set(scope, "k1", json!({"a": [1, 2]}), Some(3_600_000))
        .unwrap();
    s.kv_incr(scope, "counter", 3, None).unwrap();
    s.lock_acquire(scope, "job", "worker-1", 60_000).unwrap();
    s.set_retention(scope, RetentionEntity::Memory, Some("fact"), Some(30))
        .unwrap();
}

#[test]
fn export_then_import_into_an_empty_store_reproduces_every_line() {
    let t = store();
    every_entity(&t.store, &t.scope);
    every_entity(&t.store, &t.other_tenant());
    let lines = export(&t.store);
    let types: Vec<String> = lines.iter().map(|l| type_of(l)).collect();
    // Parents before children; audit, then vectors, last.
    let order = [
        "tenant",
        "subject",
        "agent",
        "session",
        "event",
        "memory",
        "document",
        "chunk",
        "checkpoint",
        "pending_write",
        "usage",
        "metric",
        "kv",
        "lock",
        "retention",
        "audit",
        "vector_model",
        "vector",
    ];
    let rank = |t: &str| order.iter().position(|o| *o == t).unwrap();
    assert!(
        types.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{types:?}"
    );
    for ty in order {
        assert!(types.iter().any(|t| t == ty), "no {ty} exported");
    }
    assert_round_trip(&t.store);
}

#[test]
fn importing_audit_records_needs_an_empty_log() {
    let t = store();
    t.store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    let src = export(&t.store);
    let only_audit: Vec<String> = src
        .iter()
        .filter(|l| type_of(l) == "audit")
        .cloned()
        .collect();
    let (dst, _dir) = empty_store();
    dst.create_tenant("test", "other", "Other").unwrap();
    let before = export(&dst);
    let e = import(&dst, &only_audit).unwrap_err();
    assert_eq!(e.code(), "import_error");
    assert_eq!(
        e.to_string(),
        "line 1: the store already has audit entries; audit records can only be imported into an empty store"
    );
    assert_eq!(export(&dst), before);

    // Into an empty store, a history edited after export is refused at the edited line.
    let mut forged = src.clone();
    let at = forged.iter().position(|l| type_of(l) == "audit").unwrap() + 1;
    let mut e: serde_json::Value = serde_json::from_str(&forged[at]).unwrap();
    e["actor"] = json!("mallory");
    forged[at] = e.to_string();
    let (empty, _dir2) = empty_store();
    let err = import(&empty, &forged).unwrap_err();
    assert_eq!(err.code(), "import_error");
    assert!(
        err.to_string().starts_with(&format!("line {}: ", at + 1)),
        "{err}"
    );
    assert!(err.to_string().contains("was modified"), "{err}");
    assert!(export(&empty).is_empty());
    import(&empty, &src).unwrap();
}

/// Source lines without audit entries, from a tenant `src` that the target lacks.
fn source_lines() -> Vec<String> {
    let (s, dir) = empty_store();
    s.create_tenant("test", "src", "Source").unwrap();
    let scope = Scope::new("src", "test");
    let mut ns = NewSession::new("conversation");
    ns.id = Some("s1".into());
    s.create_session(&scope, ns).unwrap();
    s.append_events(
        &scope,
        "s1",
        vec![
            NewEvent::message("user", "a"),
            NewEvent::message("user", "b"),
        ],
    )
    .unwrap();
    let mut m = NewMemory::new("a fact");
    m.id = Some("m1".into());
    s.remember(&scope, m).unwrap();
    let lines = export(&s)
        .into_iter()
        .filter(|l| type_of(l) != "audit")
        .collect::<Vec<_>>();
    drop(s);
    drop(dir);
    let types: Vec<String> = lines.iter().map(|l| type_of(l)).collect();
    assert_eq!(types, ["tenant", "session", "event", "event", "memory"]);
    lines
}

/// Imports `lines` into a populated store and checks the error and that nothing changed.
fn assert_refused(lines: &[String], line: u64, message: &str) {
    let t = store();
    t.store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    let before = export(&t.store);
    let e = import(&t.store, lines).unwrap_err();
    assert_eq!(e.code(), "import_error", "{e}");
    match &e {
        agentstore::Error::Import {
            line: l,
            message: m,
        } => {
            assert_eq!(*l, line, "{e}");
            assert!(m.contains(message), "{m:?} lacks {message:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(export(&t.store), before);
    assert!(t.store.verify().unwrap().ok());
}

#[test]
fn import_errors_name_the_line_and_change_nothing() {
    let src = source_lines();
    // The clean file imports into a populated store (no audit lines in it).
    let t = store();
    let rep = import(&t.store, &src).unwrap();
    assert_eq!(rep.counts["event"], 2);

    let mut bad_json = src.clone();
    bad_json.insert(2, "{\"type\": \"event\", ".into());
    assert_refused(&bad_json, 3, "not valid JSON");

    let mut unknown = src.clone();
    unknown.insert(1, r#"{"type":"widget","id":"w"}"#.into());
    assert_refused(&unknown, 2, "widget");

    let mut early = src.clone();
    early.swap(1, 2);
    assert_refused(
        &early,
        2,
        "event refers to session 's1' of tenant 'src' that is neither earlier in the file nor in the store",
    );

    let mut dup = src.clone();
    dup.push(src[4].clone());
    assert_refused(&dup, 6, "memory 'm1' already exists in tenant 'src'");

    let mut dup_seq = src.clone();
    let mut e: serde_json::Value = serde_json::from_str(&src[3]).unwrap();
    e["id"] = json!("another");
    e["seq"] = json!(1);
    dup_seq[3] = e.to_string();
    assert_refused(&dup_seq, 4, "already has an event with seq 1");

    let mut no_tenant = src.clone();
    no_tenant.remove(0);
    assert_refused(&no_tenant, 1, "refers to tenant 'src'");

    // A blank line still counts: the error names the line as an editor shows it.
    let mut blank = src.clone();
    blank.insert(1, String::new());
    blank.push("[]".into());
    assert_refused(&blank, 7, "missing \"type\" field");
}

/// A store whose only vectors are `n` memories' of model `external-8d`.
fn store_with_vectors(n: usize) -> crate::common::TestStore {
    let t = store();
    let batch = (0..n)
        .map(|i| NewMemory {
            id: Some(format!("m{i}")),
            vector: Some(
                (0..8)
                    .map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0 + 0.01 * j as f32)
                    .collect(),
            ),
            ..NewMemory::new(format!("memory number {i}"))
        })
        .collect();
    t.store.remember_many(&t.scope, batch).unwrap();
    t
}

fn vector_search(s: &Store, scope: &Scope, v: Vec<f32>) -> Vec<(String, f64)> {
    s.search(
        scope,
        SearchRequest {
            limit: 10,
            targets: vec![Target::Memory],
            ..SearchRequest::vector(v)
        },
    )
    .unwrap()
    .into_iter()
    .map(|h| (h.id, h.score))
    .collect()
}

#[test]
fn vectors_round_trip_and_are_searchable_after_import() {
    let t = store_with_vectors(60);
    let lines = export(&t.store);
    let vectors: Vec<&String> = lines.iter().filter(|l| type_of(l) == "vector").collect();
    assert_eq!(vectors.len(), 60);
    let first: serde_json::Value = serde_json::from_str(vectors[0]).unwrap();
    assert_eq!(first["target"], "memory");
    assert_eq!(first["record_id"], "m0");
    assert_eq!(first["model"], "external-8d");
    assert_eq!(first["vector"].as_array().unwrap().len(), 8);
    let model: serde_json::Value =
        serde_json::from_str(lines.iter().find(|l| type_of(l) == "vector_model").unwrap()).unwrap();
    assert_eq!(model["dimension"], 8);
    assert_eq!(model["metric"], "cosine");

    let (dst, _dir) = empty_store();
    import(&dst, &lines).unwrap();
    let scope = t.scope.clone();
    for q in [vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0], vec![-3.0; 8]] {
        assert_eq!(
            vector_search(&dst, &scope, q.clone()),
            vector_search(&t.store, &scope, q)
        );
    }
    let got = dst
        .backend()
        .get_vectors("t1", "external-8d", &[(Target::Memory, "m5".into())])
        .unwrap();
    let want = t
        .store
        .backend()
        .get_vectors("t1", "external-8d", &[(Target::Memory, "m5".into())])
        .unwrap();
    assert_eq!(got, want);
    assert!(got[0].is_some());
    let v = dst.verify().unwrap();
    assert!(v.ok(), "{v:?}");
}

#[test]
fn bad_vector_lines_name_the_line_and_change_nothing() {
    let t = store_with_vectors(3);
    // Without the audit log, so the lines import into a store that has one.
    let src: Vec<String> = export(&t.store)
        .into_iter()
        .filter(|l| type_of(l) != "audit")
        .map(|l| l.replace("\"t1\"", "\"src\""))
        .collect();
    let types: Vec<String> = src.iter().map(|l| type_of(l)).collect();
    assert_eq!(
        types,
        [
            "tenant",
            "memory",
            "memory",
            "memory",
            "vector_model",
            "vector",
            "vector",
            "vector"
        ]
    );
    let edit = |i: usize, f: &dyn Fn(&mut serde_json::Value)| {
        let mut lines = src.clone();
        let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
        f(&mut v);
        lines[i] = v.to_string();
        lines
    };
    assert_refused(
        &edit(5, &|v| v["vector"] = json!([1.0, 2.0])),
        6,
        "has 2 values, vector model 'external-8d' has 8",
    );
    assert_refused(
        &edit(5, &|v| v["record_id"] = json!("nobody")),
        6,
        "vector refers to memory 'nobody' of tenant 'src' that is neither earlier in the file nor in the store",
    );
    assert_refused(
        &edit(5, &|v| v["model"] = json!("other-model")),
        6,
        "vector model 'other-model' that is neither earlier in the file nor in the store",
    );
    assert_refused(
        &edit(4, &|v| v["dimension"] = json!(9)),
        6,
        "vector of memory 'm0' has 8 values, vector model 'external-8d' has 9",
    );
    let mut twice = src.clone();
    let mut other: serde_json::Value = serde_json::from_str(&src[4]).unwrap();
    other["dimension"] = json!(9);
    twice.insert(5, other.to_string());
    assert_refused(
        &twice,
        6,
        "vector model 'external-8d' is 9-dimensional with metric cosine here, 8 with cosine in the store",
    );
    assert_refused(&edit(6, &|v| v["vector"][3] = json!("NaN")), 7, "vector");
    assert_refused(
        &edit(7, &|v| v["vector"] = json!(vec![0.0; 8])),
        8,
        "all zeros",
    );
    let mut dup = src.clone();
    dup.push(src[5].clone());
    assert_refused(
        &dup,
        9,
        "memory 'm0' of tenant 'src' already has a vector of model 'external-8d'",
    );
    // The memory after its vector.
    let mut early = src.clone();
    let m0 = early.remove(1);
    early.push(m0);
    assert_refused(&early, 5, "vector refers to memory 'm0'");
    assert_refused(
        &src[..1]
            .iter()
            .chain(&src[5..6])
            .cloned()
            .collect::<Vec<_>>(),
        2,
        "vector refers to vector model 'external-8d' that is neither earlier in the file nor in the store",
    );
}

// ------------------------------------------------------------------------- property

#[derive(Clone, Debug)]
struct SessionSpec {
    kind: String,
    events: Vec<(String, Option<i64>)>,
}

#[derive(Clone, Debug)]
struct Spec {
    sessions: Vec<SessionSpec>,
    memories: Vec<(Option<u8>, String, f64)>,
    kv: Vec<(u8, i64)>,
    metrics: Vec<(u8, u8, f64)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let text = "[a-zA-Z0-9 éß✓\"\\\\\n]{0,40}";
    let session = (
        prop::sample::select(vec!["conversation", "task", "episode"]),
        prop::collection::vec((text, prop::option::of(0i64..10_000)), 0..6),
    )
        .prop_map(|(kind, events)| SessionSpec {
            kind: kind.into(),
            events,
        });
    (
        prop::collection::vec(session, 0..4),
        prop::collection::vec(
            (prop::option::of(0u8..3), "[a-z ]{1,30}", 0.0f64..=1.0),
            0..6,
        ),
        prop::collection::vec((0u8..4, -1000i64..1000), 0..5),
        prop::collection::vec((0u8..3, 0u8..3, -1e6f64..1e6), 0..6),
    )
        .prop_map(|(sessions, memories, kv, metrics)| Spec {
            sessions,
            memories,
            kv,
            metrics,
        })
}

fn build(s: &Store, scope: &Scope, spec: &Spec) {
    for sp in &spec.sessions {
        let sess = s
            .create_session(scope, NewSession::new(sp.kind.clone()))
            .unwrap();
        if sp.events.is_empty() {
            continue;
        }
        let events = sp
            .events
            .iter()
            .map(|(content, tokens)| NewEvent {
                tokens: *tokens,
                metadata: Some(json!({"len": content.len()})),
                ..NewEvent::message("user", content.clone())
            })
            .collect();
        s.append_events(scope, &sess.id, events).unwrap();
    }
    for (key, content, importance) in &spec.memories {
        let mut m = NewMemory::new(content.clone());
        m.key = key.map(|k| format!("key{k}"));
        m.importance = Some(*importance);
        s.remember(scope, m).unwrap();
    }
    for (key, by) in &spec.kv {
        s.kv_incr(scope, &format!("counter{key}"), *by, None)
            .unwrap();
    }
    if !spec.metrics.is_empty() {
        let points = spec
            .metrics
            .iter()
            .map(|(name, label, value)| NewMetricPoint {
                name: format!("m{name}"),
                labels: [("l".to_owned(), label.to_string())].into(),
                value: *value,
                at: None,
            })
            .collect();
        s.record_metrics(scope, points).unwrap();
    }
}

proptest! {
    // Every case creates two stores; a few dozen cases would dominate the suite.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_stores_round_trip(spec in spec()) {
        let t = store();
        build(&t.store, &t.scope, &spec);
        assert_round_trip(&t.store);
    }
}
