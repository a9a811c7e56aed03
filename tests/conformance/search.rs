//! Search: keyword search over memories, chunks and events with stemming and Unicode
//! folding; every filter; tenant isolation; vector modes refused without a vector; query
//! text that looks like FTS5 or SQL syntax; the index following supersede, forget, delete,
//! replace and import; recency, importance and MMR reranking.
//!
//! A backend may run this file more than once, under different module names, with a
//! different keyword engine each time: `common::search_store` gets the module path and
//! picks the engine. The SQLite backend runs it as `search`, where FTS5 answers, and as
//! `search_keyword_index`, where the in-memory keyword index of large stores answers
//! (built eagerly however small the store).

use std::collections::BTreeSet;

use agentstore::search::{
    Fusion, HitRecord, MetadataCondition, MetadataOp, SearchFilter, SearchMode, Target,
};
use agentstore::time::{from_micros, now, to_micros};
use agentstore::{
    Namespace, NewAgent, NewDocument, NewEvent, NewMemory, NewSession, NewSubject, Scope,
    SearchHit, SearchRequest, Store, Timestamp, UpsertOutcome,
};
use serde_json::json;

use crate::common::{TestStore, empty_store, search_store};

/// A new store with tenant `t1`, with the keyword engine this module's name asks for.
fn store() -> TestStore {
    search_store(module_path!())
}

const DAY_US: i64 = 86_400 * 1_000_000;

fn days_ago(days: i64) -> Timestamp {
    from_micros(to_micros(&now()) - days * DAY_US)
}

pub(crate) fn search(store: &Store, scope: &Scope, req: SearchRequest) -> Vec<SearchHit> {
    store.search(scope, req).unwrap()
}

/// Ids of the hits for `text` with `filter`, as a set.
fn ids_where(t: &TestStore, text: &str, filter: SearchFilter) -> BTreeSet<String> {
    search(
        &t.store,
        &t.scope,
        SearchRequest {
            filter,
            limit: 1000,
            ..SearchRequest::text(text)
        },
    )
    .into_iter()
    .map(|h| h.id)
    .collect()
}

fn ids(t: &TestStore, text: &str) -> BTreeSet<String> {
    ids_where(t, text, SearchFilter::default())
}

pub(crate) fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn remember(t: &TestStore, m: NewMemory) -> String {
    t.store.remember(&t.scope, m).unwrap().id().to_owned()
}

fn memory(id: &str, content: &str) -> NewMemory {
    NewMemory {
        id: Some(id.into()),
        ..NewMemory::new(content)
    }
}

#[test]
fn stemming_finds_other_forms_and_reports_components() {
    let t = store();
    remember(
        &t,
        memory("m1", "The agent runs the test suite every night"),
    );
    remember(&t, memory("m2", "Soup recipes for a cold evening"));
    let hits = search(&t.store, &t.scope, SearchRequest::text("running tests"));
    assert_eq!(hits.len(), 1, "{hits:?}");
    let h = &hits[0];
    assert_eq!((h.target, h.id.as_str()), (Target::Memory, "m1"));
    let c = &h.components;
    assert!(c.keyword.is_some_and(|k| k > 0.0), "{c:?}");
    assert_eq!(c.keyword_rank, Some(1));
    assert_eq!((c.vector, c.vector_rank), (None, None));
    assert_eq!(c.fused, 1.0 / 61.0);
    assert_eq!((c.recency, c.importance), (None, None));
    assert_eq!(h.score, c.fused);
    let HitRecord::Memory(m) = &h.record else {
        panic!("expected a memory, got {:?}", h.record);
    };
    assert_eq!(m.content, "The agent runs the test suite every night");
    // The summary, topic and tags are searched too.
    let mut m = memory("m3", "Plain words");
    m.summary = Some("quarterly figures".into());
    m.topic = Some("finance".into());
    m.tags = vec!["budgeting".into()];
    remember(&t, m);
    for q in ["figure", "finance", "budget"] {
        assert_eq!(ids(&t, q), set(&["m3"]), "{q}");
    }
}

#[test]
fn more_matching_words_rank_higher_and_limit_cuts() {
    let t = store();
    remember(&t, memory("both", "deploy the rollback plan"));
    remember(&t, memory("one", "deploy on friday"));
    let hits = search(&t.store, &t.scope, SearchRequest::text("rollback deploy"));
    let order: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(order, ["both", "one"]);
    assert!(hits[0].score > hits[1].score);
    assert_eq!(hits[1].components.keyword_rank, Some(2));

    for i in 0..30 {
        remember(
            &t,
            memory(&format!("n{i}"), &format!("note {i} about deploys")),
        );
    }
    let hits = search(
        &t.store,
        &t.scope,
        SearchRequest {
            limit: 5,
            ..SearchRequest::text("deploy")
        },
    );
    assert_eq!(hits.len(), 5);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let ranks: Vec<_> = hits.iter().map(|h| h.components.keyword_rank).collect();
    assert_eq!(ranks, [1, 2, 3, 4, 5].map(Some));
}

#[test]
fn unicode_accents_and_cjk() {
    let t = store();
    remember(&t, memory("fr", "Le café était fermé à Noël"));
    remember(&t, memory("zh", "会议记录：东京，大阪"));
    remember(&t, memory("ja", "東京タワーに行った"));
    remember(&t, memory("ko", "서울 날씨 맑음"));
    remember(&t, memory("de", "Die Straße ist GROSS"));
    for q in ["cafe", "CAFÉ", "ferme", "noel", "Noël"] {
        assert_eq!(ids(&t, q), set(&["fr"]), "{q}");
    }
    assert_eq!(ids(&t, "大阪"), set(&["zh"]));
    assert_eq!(ids(&t, "东京"), set(&["zh"]));
    // Japanese is written without spaces: the run is one token, matched by prefix.
    assert_eq!(ids(&t, "東京"), set(&["ja"]));
    assert_eq!(ids(&t, "서울"), set(&["ko"]));
    assert_eq!(ids(&t, "gross"), set(&["de"]));
    assert_eq!(ids(&t, "straße"), set(&["de"]));
}

#[test]
fn memories_chunks_and_events_with_targets() {
    let t = store();
    remember(&t, memory("m1", "kubernetes cluster upgrade notes"));
    let doc = t
        .store
        .put_document(
            &t.scope,
            NewDocument {
                id: Some("d1".into()),
                ..NewDocument::new("Runbook: drain each kubernetes node before the upgrade.")
            },
        )
        .unwrap();
    let chunk_id = t.store.list_chunks(&t.scope, doc.id()).unwrap()[0]
        .id
        .clone();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    let evs = t
        .store
        .append_events(
            &t.scope,
            &s.id,
            vec![
                NewEvent::message("user", "please upgrade the kubernetes cluster"),
                NewEvent {
                    kind: "tool_call".into(),
                    tool_name: Some("kubectl_drain".into()),
                    ..Default::default()
                },
            ],
        )
        .unwrap();

    let hits = search(
        &t.store,
        &t.scope,
        SearchRequest::text("kubernetes upgrade"),
    );
    let found: BTreeSet<(Target, String)> = hits.iter().map(|h| (h.target, h.id.clone())).collect();
    assert_eq!(
        found,
        BTreeSet::from([
            (Target::Memory, "m1".to_owned()),
            (Target::Chunk, chunk_id.clone()),
            (Target::Event, evs[0].id.clone()),
        ])
    );
    for h in &hits {
        let matches = matches!(
            (&h.target, &h.record),
            (Target::Memory, HitRecord::Memory(_))
                | (Target::Chunk, HitRecord::Chunk(_))
                | (Target::Event, HitRecord::Event(_))
        );
        assert!(matches, "{h:?}");
    }
    // Tool names are searched (unicode61 splits kubectl_drain into two words).
    assert_eq!(ids(&t, "drain"), set(&[&chunk_id, &evs[1].id]));

    let only = |targets: Vec<Target>| -> BTreeSet<Target> {
        search(
            &t.store,
            &t.scope,
            SearchRequest {
                targets,
                ..SearchRequest::text("kubernetes")
            },
        )
        .into_iter()
        .map(|h| h.target)
        .collect()
    };
    assert_eq!(only(vec![Target::Chunk]), BTreeSet::from([Target::Chunk]));
    assert_eq!(
        only(vec![Target::Event, Target::Memory]),
        BTreeSet::from([Target::Event, Target::Memory])
    );
}

#[test]
fn every_filter_is_applied() {
    let t = store();
    let sc = &t.scope;
    let subject = t
        .store
        .create_subject(
            sc,
            NewSubject {
                external_id: "alice@example.com".into(),
                metadata: json!({}),
                ..Default::default()
            },
        )
        .unwrap();
    let agent = t.store.put_agent(sc, NewAgent::named("planner")).unwrap();
    let s1 = t
        .store
        .create_session(
            sc,
            NewSession {
                namespace: Namespace::parse_path("app/u1").unwrap(),
                subject_id: Some(subject.id.clone()),
                agent_id: Some(agent.id.clone()),
                ..NewSession::new("conversation")
            },
        )
        .unwrap();
    let s2 = t.store.create_session(sc, NewSession::new("task")).unwrap();
    let ev = |sid: &str, kind: &str, meta| {
        t.store
            .append_event(
                sc,
                sid,
                NewEvent {
                    kind: kind.into(),
                    content: Some("widget alpha".into()),
                    metadata: Some(meta),
                    ..Default::default()
                },
            )
            .unwrap()
            .id
    };
    let e1 = ev(&s1.id, "message", json!({"channel": "web", "n": 3}));
    let e2 = ev(&s2.id, "decision", json!({"channel": "cli", "n": 10}));
    let e_old = t
        .store
        .append_event(
            sc,
            &s2.id,
            NewEvent {
                kind: "message".into(),
                content: Some("widget alpha".into()),
                created_at: Some(days_ago(30)),
                ..Default::default()
            },
        )
        .unwrap()
        .id;

    let mem = |id: &str, ns: &str, kind: &str, f: &dyn Fn(&mut NewMemory)| {
        let mut m = NewMemory {
            id: Some(id.into()),
            namespace: Namespace::parse_path(ns).unwrap(),
            kind: kind.into(),
            ..NewMemory::new(format!("widget alpha {id}"))
        };
        f(&mut m);
        remember(&t, m)
    };
    mem("m_u1", "app/u1", "fact", &|m| {
        m.tags = vec!["red".into(), "blue".into()];
        m.subject_id = Some(subject.id.clone());
        m.source_sessions = vec![s1.id.clone()];
        m.metadata = json!({"score": 7, "origin": {"app": "crm"}, "ok": true, "x": null});
    });
    mem("m_u2", "app/u2", "preference", &|m| {
        m.tags = vec!["red".into()];
        m.agent_id = Some(agent.id.clone());
        m.metadata =
            json!({"score": 2.5, "origin": {"app": "mail"}, "ok": false, "date": "2025-03-01"});
    });
    mem("m_other", "other", "fact", &|m| {
        m.metadata = json!({"score": "7", "date": "2024-12-31"});
    });
    t.store
        .put_document(
            sc,
            NewDocument {
                id: Some("d_u1".into()),
                namespace: Namespace::parse_path("app/u1").unwrap(),
                doc_type: Some("markdown".into()),
                subject_id: Some(subject.id.clone()),
                metadata: json!({"score": 9}),
                ..NewDocument::new("widget alpha manual")
            },
        )
        .unwrap();
    let chunk = t.store.list_chunks(sc, "d_u1").unwrap()[0].id.clone();

    let all = ids(&t, "widget");
    assert_eq!(
        all,
        set(&[&e1, &e2, &e_old, "m_u1", "m_u2", "m_other", &chunk])
    );
    let f = |f: SearchFilter| ids_where(&t, "widget", f);
    let ns = |p: &str| Some(Namespace::parse_path(p).unwrap());

    assert_eq!(
        f(SearchFilter {
            namespace_prefix: ns("app"),
            ..Default::default()
        }),
        set(&["m_u1", "m_u2", &chunk, &e1])
    );
    assert_eq!(
        f(SearchFilter {
            namespace_prefix: ns("app/u1"),
            ..Default::default()
        }),
        set(&["m_u1", &chunk, &e1])
    );
    assert_eq!(
        f(SearchFilter {
            kinds: vec!["fact".into(), "decision".into(), "markdown".into()],
            ..Default::default()
        }),
        set(&["m_u1", "m_other", &e2, &chunk])
    );
    // All tags must be present; only memories have tags.
    assert_eq!(
        f(SearchFilter {
            tags: vec!["red".into()],
            ..Default::default()
        }),
        set(&["m_u1", "m_u2"])
    );
    assert_eq!(
        f(SearchFilter {
            tags: vec!["red".into(), "blue".into()],
            ..Default::default()
        }),
        set(&["m_u1"])
    );
    // A session: its events, and memories derived from it.
    assert_eq!(
        f(SearchFilter {
            session_id: Some(s1.id.clone()),
            ..Default::default()
        }),
        set(&["m_u1", &e1])
    );
    assert_eq!(
        f(SearchFilter {
            subject_id: Some(subject.id.clone()),
            ..Default::default()
        }),
        set(&["m_u1", &chunk, &e1])
    );
    assert_eq!(
        f(SearchFilter {
            agent_id: Some(agent.id.clone()),
            ..Default::default()
        }),
        set(&["m_u2", &e1])
    );
    // Time window on created_at: from inclusive, to exclusive.
    assert_eq!(
        f(SearchFilter {
            to: Some(days_ago(1)),
            ..Default::default()
        }),
        set(&[&e_old])
    );
    let all_but_old: BTreeSet<String> = all.iter().filter(|i| **i != e_old).cloned().collect();
    assert_eq!(
        f(SearchFilter {
            from: Some(days_ago(1)),
            ..Default::default()
        }),
        all_but_old
    );

    let meta = |path: &str, op: MetadataOp, value: serde_json::Value| {
        f(SearchFilter {
            metadata: vec![MetadataCondition::new(path, op, value)],
            ..Default::default()
        })
    };
    // Numbers compare numerically, and never with the string "7".
    assert_eq!(meta("score", MetadataOp::Eq, json!(7)), set(&["m_u1"]));
    assert_eq!(meta("score", MetadataOp::Eq, json!(7.0)), set(&["m_u1"]));
    assert_eq!(meta("score", MetadataOp::Eq, json!("7")), set(&["m_other"]));
    assert_eq!(
        meta("score", MetadataOp::Gt, json!(2.5)),
        set(&["m_u1", &chunk])
    );
    assert_eq!(
        meta("score", MetadataOp::Gte, json!(2.5)),
        set(&["m_u1", "m_u2", &chunk])
    );
    assert_eq!(meta("score", MetadataOp::Lt, json!(7)), set(&["m_u2"]));
    assert_eq!(
        meta("score", MetadataOp::Lte, json!(7)),
        set(&["m_u1", "m_u2"])
    );
    // Not equal includes records without the key.
    assert_eq!(
        meta("score", MetadataOp::Ne, json!(7)),
        all.iter()
            .filter(|i| *i != "m_u1")
            .cloned()
            .collect::<BTreeSet<_>>()
    );
    // Strings compare byte-wise, so ISO dates order.
    assert_eq!(
        meta("date", MetadataOp::Gte, json!("2025-01-01")),
        set(&["m_u2"])
    );
    assert_eq!(
        meta("origin.app", MetadataOp::Eq, json!("crm")),
        set(&["m_u1"])
    );
    assert_eq!(meta("ok", MetadataOp::Eq, json!(true)), set(&["m_u1"]));
    assert_eq!(meta("ok", MetadataOp::Eq, json!(false)), set(&["m_u2"]));
    assert_eq!(meta("x", MetadataOp::Eq, json!(null)), set(&["m_u1"]));
    assert_eq!(meta("channel", MetadataOp::Eq, json!("web")), set(&[&e1]));
    assert_eq!(meta("n", MetadataOp::Gt, json!(5)), set(&[&e2]));
    // Several conditions must all hold.
    assert_eq!(
        f(SearchFilter {
            metadata: vec![
                MetadataCondition::new("score", MetadataOp::Gt, 1),
                MetadataCondition::new("ok", MetadataOp::Ne, true),
            ],
            ..Default::default()
        }),
        set(&["m_u2", &chunk])
    );
    // Bad paths and operators are refused before anything runs.
    for (path, op, value) in [
        ("a'); DROP TABLE memories; --", MetadataOp::Eq, json!(1)),
        ("a.", MetadataOp::Eq, json!(1)),
        ("ok", MetadataOp::Gt, json!(true)),
        ("o", MetadataOp::Eq, json!({"a": 1})),
    ] {
        let e = t
            .store
            .search(
                sc,
                SearchRequest {
                    filter: SearchFilter {
                        metadata: vec![MetadataCondition::new(path, op, value)],
                        ..Default::default()
                    },
                    ..SearchRequest::text("widget")
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{path}: {e}");
    }
    assert_eq!(ids(&t, "widget"), all);
}

#[test]
fn expired_records_are_left_out() {
    let t = store();
    let mut m = memory("gone", "expired lighthouse note");
    m.expires_at = Some(days_ago(1));
    remember(&t, m);
    remember(&t, memory("live", "live lighthouse note"));
    let s = t
        .store
        .create_session(
            &t.scope,
            NewSession {
                expires_at: Some(days_ago(1)),
                ..NewSession::new("task")
            },
        )
        .unwrap();
    t.store
        .append_event(&t.scope, &s.id, NewEvent::message("user", "lighthouse"))
        .unwrap();
    assert_eq!(ids(&t, "lighthouse"), set(&["live"]));
}

#[test]
fn tenants_see_only_their_records() {
    let t = store();
    let other = t.other_tenant();
    remember(&t, memory("mine", "shared secret phrase"));
    t.store
        .remember(&other, memory("theirs", "shared secret phrase too"))
        .unwrap();
    assert_eq!(ids(&t, "secret"), set(&["mine"]));
    let theirs: Vec<String> = search(&t.store, &other, SearchRequest::text("secret phrase"))
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(theirs, ["theirs"]);
    // A tenant that does not exist finds nothing.
    assert!(
        search(
            &t.store,
            &Scope::new("nobody", "x"),
            SearchRequest::text("secret")
        )
        .is_empty()
    );
}

#[test]
fn vector_modes_without_a_vector_are_refused() {
    // A store without an embedder cannot turn text into a vector: vector and hybrid
    // search need the caller's vector, and say so rather than answering by keywords.
    let t = store();
    remember(&t, memory("m1", "anything"));
    for mode in [SearchMode::Vector, SearchMode::Hybrid] {
        let e = t
            .store
            .search(
                &t.scope,
                SearchRequest {
                    mode: Some(mode),
                    ..SearchRequest::text("anything")
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(e.to_string().contains("needs a query vector"), "{e}");
    }
    let e = t
        .store
        .search(
            &t.scope,
            SearchRequest {
                mode: Some(SearchMode::Keyword),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(e.to_string().contains("needs query text"), "{e}");
    // Text alone in a store without an embedder is a keyword search.
    assert_eq!(ids(&t, "anything"), set(&["m1"]));
}

#[test]
fn query_syntax_is_never_interpreted() {
    let t = store();
    remember(&t, memory("a", "alpha report"));
    remember(&t, memory("b", "beta report"));
    remember(&t, memory("g", "gamma"));
    let alpha = set(&["a"]);
    for q in [
        "alpha\"",
        "\"alpha",
        "alpha*",
        "*alpha",
        "NEAR(alpha",
        "NEAR(alpha gamma, 0",
        "-alpha",
        "alpha -",
        "content:alpha",
        "{content summary}: alpha",
        "^alpha",
        "alpha'",
        "'; DROP TABLE memories; --alpha",
        "alpha) OR (",
        "alpha \" OR \"gamma",
    ] {
        let got = ids(&t, q);
        if q.contains("gamma") {
            assert_eq!(got, set(&["a", "g"]), "{q}");
        } else {
            assert_eq!(got, alpha, "{q}");
        }
    }
    // Operators are words: AND does not narrow, NOT does not exclude.
    assert_eq!(ids(&t, "alpha AND beta"), set(&["a", "b"]));
    assert_eq!(ids(&t, "alpha NOT beta"), set(&["a", "b"]));
    assert_eq!(ids(&t, "report NOT alpha"), set(&["a", "b"]));
    // Nothing but syntax: no words, no hits, no error.
    for q in [
        "*",
        "\"",
        "\"\"",
        "()",
        "-",
        ":",
        "'",
        "^",
        "( ) * : - ^ \" '",
    ] {
        assert_eq!(ids(&t, q), BTreeSet::new(), "{q}");
    }
    assert_eq!(
        t.store
            .list_memories(&t.scope, Default::default())
            .unwrap()
            .items
            .len(),
        3
    );
}

#[test]
fn supersede_keeps_only_the_current_version_unless_valid_at() {
    let t = store();
    let keyed = |content: &str| NewMemory {
        key: Some("drink".into()),
        ..NewMemory::new(content)
    };
    let v1 = remember(&t, keyed("prefers tea in the morning"));
    let between = now();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let out = t
        .store
        .remember(&t.scope, keyed("prefers coffee in the morning"))
        .unwrap();
    let UpsertOutcome::Superseded { id: v2, .. } = out else {
        panic!("expected supersede, got {out:?}");
    };
    assert_eq!(ids(&t, "prefers morning"), set(&[&v2]));
    assert!(ids(&t, "tea").is_empty());
    let at = |t_: Timestamp, q: &str| {
        ids_where(
            &t,
            q,
            SearchFilter {
                valid_at: Some(t_),
                ..Default::default()
            },
        )
    };
    assert_eq!(at(between, "prefers"), set(&[&v1]));
    assert_eq!(at(between, "tea"), set(&[&v1]));
    assert_eq!(at(now(), "prefers"), set(&[&v2]));
    // Invalidated: no current version at all.
    t.store.invalidate_memory(&t.scope, &v2).unwrap();
    assert!(ids(&t, "prefers").is_empty());
}

#[test]
fn forget_and_deletes_leave_the_index() {
    let t = store();
    let sc = &t.scope;
    remember(&t, memory("m1", "zephyr memory"));
    let s = t.store.create_session(sc, NewSession::new("task")).unwrap();
    let ev = t
        .store
        .append_event(sc, &s.id, NewEvent::message("user", "zephyr event"))
        .unwrap();
    t.store
        .put_document(
            sc,
            NewDocument {
                id: Some("d1".into()),
                ..NewDocument::new("zephyr document")
            },
        )
        .unwrap();
    let chunk = t.store.list_chunks(sc, "d1").unwrap()[0].id.clone();
    assert_eq!(ids(&t, "zephyr"), set(&["m1", &ev.id, &chunk]));

    t.store.forget(sc, "m1").unwrap();
    assert_eq!(ids(&t, "zephyr"), set(&[&ev.id, &chunk]));
    t.store.delete_session(sc, &s.id).unwrap();
    assert_eq!(ids(&t, "zephyr"), set(&[&chunk]));
    t.store.delete_document(sc, "d1").unwrap();
    assert!(ids(&t, "zephyr").is_empty());
    assert!(t.store.verify().unwrap().ok());
}

#[test]
fn document_replace_updates_chunk_hits() {
    let t = store();
    let put = |content: &str| {
        t.store
            .put_document(
                &t.scope,
                NewDocument {
                    source_path: Some("notes/plan.md".into()),
                    ..NewDocument::new(content)
                },
            )
            .unwrap()
    };
    let first = put("The plan mentions the aurora project.");
    let old_chunk = t.store.list_chunks(&t.scope, first.id()).unwrap()[0]
        .id
        .clone();
    assert_eq!(ids(&t, "aurora"), set(&[&old_chunk]));
    let second = put("The plan now mentions the borealis project.");
    assert_eq!(second.id(), first.id());
    let new_chunk = t.store.list_chunks(&t.scope, second.id()).unwrap()[0]
        .id
        .clone();
    assert_ne!(new_chunk, old_chunk);
    assert!(ids(&t, "aurora").is_empty());
    assert_eq!(ids(&t, "borealis"), set(&[&new_chunk]));
    assert_eq!(ids(&t, "plan project"), set(&[&new_chunk]));
}

#[test]
fn imported_records_are_searchable() {
    let t = store();
    remember(&t, memory("m1", "imported nebula fact"));
    let mut buf = Vec::new();
    t.store.export_jsonl(&mut buf, &mut |_| {}).unwrap();
    let (fresh, _guard) = empty_store();
    fresh
        .import_jsonl(
            &Scope::new("admin", "importer"),
            &mut buf.as_slice(),
            &mut |_| {},
        )
        .unwrap();
    let hits = search(&fresh, &t.scope, SearchRequest::text("nebula"));
    assert_eq!(
        hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["m1"]
    );
}

#[test]
fn recency_importance_and_mmr_rerank() {
    let t = store();
    let sc = &t.scope;
    let s = t.store.create_session(sc, NewSession::new("task")).unwrap();
    let at = |days: i64, text: &str| NewEvent {
        created_at: Some(days_ago(days)),
        ..NewEvent::message("user", text)
    };
    let evs = t
        .store
        .append_events(
            sc,
            &s.id,
            vec![at(10, "harbor status report"), at(0, "harbor status")],
        )
        .unwrap();
    let (old, new) = (&evs[0].id, &evs[1].id);
    let order = |req: SearchRequest| -> Vec<String> {
        search(&t.store, sc, req)
            .into_iter()
            .map(|h| h.id)
            .collect()
    };
    let base = SearchRequest {
        targets: vec![Target::Event],
        ..SearchRequest::text("harbor report")
    };
    assert_eq!(order(base.clone()), [old.clone(), new.clone()]);
    let hits = search(
        &t.store,
        sc,
        SearchRequest {
            recency_half_life_secs: Some(86_400.0),
            ..base.clone()
        },
    );
    assert_eq!(hits[0].id, *new);
    let r = hits[1].components.recency.unwrap();
    assert!((r - 0.5f64.powi(10)).abs() < 1e-4, "{r}");
    assert!((hits[1].score - hits[1].components.fused * r).abs() < 1e-15);

    let mut lo = memory("lo", "release checklist steps");
    lo.importance = Some(0.1);
    let mut hi = memory("hi", "release checklist");
    hi.importance = Some(0.9);
    remember(&t, lo);
    remember(&t, hi);
    let mem = SearchRequest {
        targets: vec![Target::Memory],
        ..SearchRequest::text("release checklist steps")
    };
    assert_eq!(order(mem.clone()), ["lo", "hi"]);
    let hits = search(
        &t.store,
        sc,
        SearchRequest {
            importance_weight: Some(10.0),
            ..mem.clone()
        },
    );
    assert_eq!(hits[0].id, "hi");
    assert_eq!(hits[0].components.importance, Some(1.0 + 10.0 * 0.9));
    assert_eq!(hits[1].components.importance, Some(1.0 + 10.0 * 0.1));

    for (id, text) in [
        ("r1", "rust borrow checker rules"),
        ("r2", "rust borrow checker rules explained"),
        ("r3", "rust borrow async runtime"),
    ] {
        remember(&t, memory(id, text));
    }
    let rust = SearchRequest {
        targets: vec![Target::Memory],
        limit: 2,
        ..SearchRequest::text("rust borrow checker rules")
    };
    let plain = order(rust.clone());
    assert_eq!(plain.len(), 2);
    assert!(!plain.contains(&"r3".to_owned()), "{plain:?}");
    let diverse = order(SearchRequest {
        mmr_lambda: Some(0.3),
        ..rust.clone()
    });
    assert_eq!(diverse[0], plain[0]);
    assert_eq!(diverse[1], "r3");
    assert_eq!(
        order(SearchRequest {
            mmr_lambda: Some(1.0),
            ..rust
        }),
        plain
    );

    let weighted = search(
        &t.store,
        sc,
        SearchRequest {
            fusion: Fusion::Weighted {
                keyword: 1.0,
                vector: 0.0,
            },
            ..mem
        },
    );
    assert_eq!(weighted[0].components.fused, 1.0);
    assert_eq!(weighted.last().unwrap().components.fused, 0.0);
}
