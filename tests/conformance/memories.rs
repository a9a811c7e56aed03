//! Memories: every upsert outcome, versions and as-of reads, dedupe, expiry, filters,
//! orders with keyset pagination, tenant isolation, forget / invalidate / touch, and bad
//! input that must change nothing.

use std::collections::BTreeSet;

use agentstore::backend::{AuditQuery, MemoryOrder, MemoryQuery};
use agentstore::codec::sha256_hex;
use agentstore::time::{from_micros, now, to_micros};
use agentstore::{
    Memory, Namespace, NewAgent, NewMemory, NewSession, NewSubject, Timestamp, UpsertOutcome,
    WriteOp,
};

use crate::common::{TestStore, store};

const DAY_US: i64 = 86_400 * 1_000_000;

fn days_ago(days: i64) -> Timestamp {
    from_micros(to_micros(&now()) - days * DAY_US)
}

fn plus_us(t: Timestamp, us: i64) -> Timestamp {
    from_micros(to_micros(&t) + us)
}

/// Actions of tenant t1's audit entries, oldest first.
fn audit_actions(t: &TestStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_seq = None;
    loop {
        let page = t
            .store
            .list_audit(AuditQuery {
                tenant_id: Some("t1".into()),
                after_seq,
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        out.extend(page.items.iter().map(|e| e.action.clone()));
        match page.next {
            Some(n) => after_seq = Some(n.parse().unwrap()),
            None => return out,
        }
    }
}

fn keyed(content: &str, key: &str) -> NewMemory {
    let mut m = NewMemory::new(content);
    m.key = Some(key.into());
    m
}

fn created(o: UpsertOutcome) -> String {
    match o {
        UpsertOutcome::Created { id } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn ids_of(items: &[Memory]) -> Vec<String> {
    items.iter().map(|m| m.id.clone()).collect()
}

fn id_set(t: &TestStore, q: MemoryQuery) -> BTreeSet<String> {
    let page = t.store.list_memories(&t.scope, q).unwrap();
    assert!(page.next.is_none());
    page.items.into_iter().map(|m| m.id).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn remember_covers_every_upsert_outcome() {
    let t = store();
    let s = &t.scope;
    let first = created(
        t.store
            .remember(s, NewMemory::new("the sky is blue"))
            .unwrap(),
    );
    let m = t.store.get_memory(s, &first).unwrap();
    assert_eq!(m.content, "the sky is blue");
    assert_eq!(m.content_hash, sha256_hex(b"the sky is blue"));
    assert_eq!(
        (m.tier.as_str(), m.importance, m.key.as_deref()),
        ("long", 0.5, None)
    );
    assert!(m.valid_to.is_none() && m.superseded_by.is_none());

    // No key, same content in the namespace: nothing is written, not even an audit entry.
    let audited = audit_actions(&t).len();
    assert_eq!(
        t.store
            .remember(s, NewMemory::new("the sky is blue"))
            .unwrap(),
        UpsertOutcome::Deduplicated { id: first.clone() }
    );
    assert_eq!(audit_actions(&t).len(), audited);

    // Key, no current version: created.
    let mut tea = keyed("likes tea", "drink");
    tea.importance = Some(0.3);
    let v1 = created(t.store.remember(s, tea).unwrap());
    assert_eq!(
        t.store
            .touch_memories(s, std::slice::from_ref(&v1))
            .unwrap(),
        1
    );
    let before = t.store.get_memory(s, &v1).unwrap();

    // Same key, same content: the other fields change in place; identity, validity and
    // read counters stay.
    let mut tea = keyed("likes tea", "drink");
    tea.importance = Some(0.9);
    tea.tags = vec!["taste".into()];
    tea.pinned = true;
    tea.priority = 5;
    tea.summary = Some("tea".into());
    assert_eq!(
        t.store.remember(s, tea).unwrap(),
        UpsertOutcome::Updated { id: v1.clone() }
    );
    let after = t.store.get_memory(s, &v1).unwrap();
    assert_eq!(
        (after.importance, after.pinned, after.priority),
        (0.9, true, 5)
    );
    assert_eq!(after.tags, vec!["taste".to_string()]);
    assert_eq!(after.summary.as_deref(), Some("tea"));
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.valid_from, before.valid_from);
    assert_eq!(after.access_count, 1);
    assert_eq!(after.last_accessed_at, before.last_accessed_at);
    assert!(after.updated_at >= before.updated_at);

    // Same key, new content: the old version is closed where the new one starts.
    let out = t.store.remember(s, keyed("likes coffee", "drink")).unwrap();
    let UpsertOutcome::Superseded { id: v2, previous } = out else {
        panic!("expected Superseded, got {out:?}");
    };
    assert_eq!(previous, v1);
    let old = t.store.get_memory(s, &v1).unwrap();
    let new = t.store.get_memory(s, &v2).unwrap();
    assert_eq!(old.valid_to, Some(new.valid_from));
    assert_eq!(old.superseded_by.as_deref(), Some(v2.as_str()));
    assert_eq!(old.content, "likes tea");
    assert_eq!(
        t.store
            .get_memory_by_key(s, &Namespace::root(), "drink", None)
            .unwrap()
            .id,
        v2
    );

    // A caller id that is taken is refused where a row would be inserted...
    let audited = audit_actions(&t).len();
    let mut clash = NewMemory::new("something else entirely");
    clash.id = Some(first.clone());
    assert_eq!(
        t.store.remember(s, clash).unwrap_err().code(),
        "already_exists"
    );
    let mut clash = keyed("likes water", "drink");
    clash.id = Some(v1.clone());
    assert_eq!(
        t.store.remember(s, clash).unwrap_err().code(),
        "already_exists"
    );
    assert_eq!(audit_actions(&t).len(), audited);
    assert_eq!(
        t.store
            .get_memory_by_key(s, &Namespace::root(), "drink", None)
            .unwrap()
            .id,
        v2
    );
    // ...while retrying the same write is idempotent.
    let mut retry = NewMemory::new("the sky is blue");
    retry.id = Some(first.clone());
    assert_eq!(
        t.store.remember(s, retry).unwrap(),
        UpsertOutcome::Deduplicated { id: first }
    );

    let actions: Vec<String> = audit_actions(&t)
        .into_iter()
        .filter(|a| a.starts_with("memory."))
        .collect();
    assert_eq!(
        actions,
        [
            "memory.create",
            "memory.create",
            "memory.access",
            "memory.update",
            "memory.supersede"
        ]
    );
}

#[test]
fn versions_and_as_of_reads() {
    let t = store();
    let s = &t.scope;
    let ns = Namespace::new(["app", "u1"]).unwrap();
    let (t1, t2, t3) = (days_ago(30), days_ago(20), days_ago(10));
    let mut ids = Vec::new();
    for (content, from) in [("Paris", t1), ("Berlin", t2), ("Rome", t3)] {
        let mut m = keyed(&format!("lives in {content}"), "city");
        m.namespace = ns.clone();
        m.valid_from = Some(from);
        ids.push(t.store.remember(s, m).unwrap().id().to_owned());
    }
    let at = |when: Option<Timestamp>| {
        t.store
            .get_memory_by_key(s, &ns, "city", when)
            .map(|m| m.content)
    };
    assert_eq!(
        at(Some(plus_us(t1, -1))).unwrap_err().code(),
        "not_found",
        "nothing was valid before the first version"
    );
    assert_eq!(at(Some(t1)).unwrap(), "lives in Paris");
    assert_eq!(at(Some(plus_us(t1, DAY_US))).unwrap(), "lives in Paris");
    assert_eq!(at(Some(plus_us(t2, -1))).unwrap(), "lives in Paris");
    assert_eq!(at(Some(t2)).unwrap(), "lives in Berlin");
    assert_eq!(at(Some(plus_us(t2, DAY_US))).unwrap(), "lives in Berlin");
    assert_eq!(at(Some(t3)).unwrap(), "lives in Rome");
    assert_eq!(at(Some(now())).unwrap(), "lives in Rome");
    assert_eq!(at(None).unwrap(), "lives in Rome");

    let hist = t.store.memory_history(s, &ns, "city").unwrap();
    assert_eq!(ids_of(&hist), ids);
    assert_eq!(
        hist.iter().map(|m| m.valid_to).collect::<Vec<_>>(),
        vec![Some(t2), Some(t3), None]
    );
    assert_eq!(
        hist.iter()
            .map(|m| m.superseded_by.clone())
            .collect::<Vec<_>>(),
        vec![Some(ids[1].clone()), Some(ids[2].clone()), None]
    );

    // Lists see current versions by default, or the versions valid at a time.
    let current = id_set(&t, MemoryQuery::default());
    assert_eq!(current, set(&[&ids[2]]));
    let then = id_set(
        &t,
        MemoryQuery {
            valid_at: Some(plus_us(t2, DAY_US)),
            ..Default::default()
        },
    );
    assert_eq!(then, set(&[&ids[1]]));

    // Keys are per namespace.
    let other_ns = Namespace::new(["app", "u2"]).unwrap();
    assert_eq!(
        t.store
            .get_memory_by_key(s, &other_ns, "city", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
    let mut elsewhere = keyed("lives in Oslo", "city");
    elsewhere.namespace = other_ns.clone();
    assert!(matches!(
        t.store.remember(s, elsewhere).unwrap(),
        UpsertOutcome::Created { .. }
    ));
    assert_eq!(at(None).unwrap(), "lives in Rome");

    // A new version back-dated before the current one started begins where the current
    // one began: versions stay in commit order and no time has two valid versions.
    let mut late = keyed("v-late", "backdated");
    late.valid_from = Some(t3);
    let late = created(t.store.remember(s, late).unwrap());
    let mut early = keyed("v-early", "backdated");
    early.valid_from = Some(t1);
    let early = t.store.remember(s, early).unwrap().id().to_owned();
    let closed = t.store.get_memory(s, &late).unwrap();
    assert_eq!(closed.valid_to, Some(t3));
    assert_eq!(t.store.get_memory(s, &early).unwrap().valid_from, t3);
    for when in [t1, t2] {
        let err = t
            .store
            .get_memory_by_key(s, &Namespace::root(), "backdated", Some(when))
            .unwrap_err();
        assert_eq!(err.code(), "not_found");
    }
    for when in [t3, now()] {
        assert_eq!(
            t.store
                .get_memory_by_key(s, &Namespace::root(), "backdated", Some(when))
                .unwrap()
                .id,
            early
        );
    }
    let history = t
        .store
        .memory_history(s, &Namespace::root(), "backdated")
        .unwrap();
    assert_eq!(
        history.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![late.as_str(), early.as_str()]
    );
}

#[test]
fn dedupe_respects_namespace_validity_and_expiry() {
    let t = store();
    let s = &t.scope;
    let mut expired = NewMemory::new("temporary note");
    expired.expires_at = Some(days_ago(1));
    let e1 = created(t.store.remember(s, expired).unwrap());

    // Expired memories are hidden unless asked for.
    assert!(!id_set(&t, MemoryQuery::default()).contains(&e1));
    assert!(
        id_set(
            &t,
            MemoryQuery {
                include_expired: true,
                ..Default::default()
            }
        )
        .contains(&e1)
    );

    // An expired memory does not absorb new content; a live one does.
    let e2 = created(
        t.store
            .remember(s, NewMemory::new("temporary note"))
            .unwrap(),
    );
    assert_ne!(e1, e2);
    assert_eq!(
        t.store
            .remember(s, NewMemory::new("temporary note"))
            .unwrap(),
        UpsertOutcome::Deduplicated { id: e2.clone() }
    );
    // Dedupe is per namespace.
    let mut other = NewMemory::new("temporary note");
    other.namespace = Namespace::new(["elsewhere"]).unwrap();
    assert!(matches!(
        t.store.remember(s, other).unwrap(),
        UpsertOutcome::Created { .. }
    ));
    // An invalidated memory is no longer current and does not absorb it either.
    t.store.invalidate_memory(s, &e2).unwrap();
    let e3 = created(
        t.store
            .remember(s, NewMemory::new("temporary note"))
            .unwrap(),
    );
    assert_ne!(e3, e2);

    // A future expiry is listed.
    let mut later = NewMemory::new("lasts a while");
    later.expires_at = Some(plus_us(now(), DAY_US));
    let l = created(t.store.remember(s, later).unwrap());
    let listed = id_set(&t, MemoryQuery::default());
    assert!(listed.contains(&l) && listed.contains(&e3));
    assert!(!listed.contains(&e1) && !listed.contains(&e2));
}

#[test]
fn list_applies_every_filter() {
    let t = store();
    let s = &t.scope;
    let subject = t
        .store
        .create_subject(
            s,
            NewSubject {
                external_id: "user@example.com".into(),
                metadata: serde_json::json!({}),
                ..Default::default()
            },
        )
        .unwrap();
    let agent = t.store.put_agent(s, NewAgent::named("coder")).unwrap();
    let session = t
        .store
        .create_session(s, NewSession::new("conversation"))
        .unwrap();
    let mk = |id: &str, ns: &[&str], kind: &str, content: &str| {
        let mut m = NewMemory::new(content);
        m.id = Some(id.into());
        m.namespace = Namespace::new(ns.iter().copied()).unwrap();
        m.kind = kind.into();
        m
    };
    let mut a = mk("m-a", &["app"], "fact", "a");
    a.topic = Some("food".into());
    a.domain = Some("home".into());
    a.tags = vec!["red".into(), "blue".into()];
    a.subject_id = Some(subject.id.clone());
    a.pinned = true;
    a.importance = Some(0.9);
    a.source_sessions = vec![session.id.clone()];
    let mut b = mk("m-b", &["app", "u1"], "pattern", "b");
    b.tier = Some("short".into());
    b.topic = Some("food".into());
    b.tags = vec!["red".into()];
    b.agent_id = Some(agent.id.clone());
    b.importance = Some(0.2);
    let mut c = mk("m-c", &["apple"], "preference", "c");
    c.tier = Some("working".into());
    c.domain = Some("work".into());
    c.tags = vec!["blue".into()];
    c.importance = Some(0.6);
    c.key = Some("k1".into());
    let d = mk("m-d", &[], "fact", "d");
    t.store.remember_many(s, vec![a, b, c, d]).unwrap();

    let q = |f: &dyn Fn(&mut MemoryQuery)| {
        let mut q = MemoryQuery::default();
        f(&mut q);
        id_set(&t, q)
    };
    let app = Namespace::new(["app"]).unwrap();
    assert_eq!(q(&|_| {}), set(&["m-a", "m-b", "m-c", "m-d"]));
    assert_eq!(
        q(&|q| q.namespace_prefix = Some(app.clone())),
        set(&["m-a", "m-b"])
    );
    assert_eq!(
        q(&|q| q.namespace_prefix = Some(Namespace::root())),
        set(&["m-a", "m-b", "m-c", "m-d"])
    );
    assert_eq!(
        q(&|q| q.kinds = vec!["fact".into(), "preference".into()]),
        set(&["m-a", "m-c", "m-d"])
    );
    assert_eq!(q(&|q| q.key = Some("k1".into())), set(&["m-c"]));
    assert_eq!(q(&|q| q.tier = Some("short".into())), set(&["m-b"]));
    assert_eq!(q(&|q| q.topic = Some("food".into())), set(&["m-a", "m-b"]));
    assert_eq!(q(&|q| q.domain = Some("work".into())), set(&["m-c"]));
    assert_eq!(q(&|q| q.tags = vec!["red".into()]), set(&["m-a", "m-b"]));
    assert_eq!(
        q(&|q| q.tags = vec!["red".into(), "blue".into()]),
        set(&["m-a"])
    );
    assert_eq!(q(&|q| q.tags = vec!["green".into()]), set(&[]));
    assert_eq!(
        q(&|q| q.subject_id = Some(subject.id.clone())),
        set(&["m-a"])
    );
    assert_eq!(q(&|q| q.agent_id = Some(agent.id.clone())), set(&["m-b"]));
    assert_eq!(
        q(&|q| q.source_session = Some(session.id.clone())),
        set(&["m-a"])
    );
    assert_eq!(q(&|q| q.pinned = Some(true)), set(&["m-a"]));
    assert_eq!(q(&|q| q.pinned = Some(false)), set(&["m-b", "m-c", "m-d"]));
    assert_eq!(
        q(&|q| q.min_importance = Some(0.5)),
        set(&["m-a", "m-c", "m-d"])
    );
    assert_eq!(
        q(&|q| {
            q.namespace_prefix = Some(app.clone());
            q.tags = vec!["red".into()];
            q.min_importance = Some(0.5);
        }),
        set(&["m-a"])
    );

    let bad = |q: MemoryQuery| t.store.list_memories(s, q).unwrap_err().code();
    assert_eq!(
        bad(MemoryQuery {
            min_importance: Some(f64::NAN),
            ..Default::default()
        }),
        "invalid_input"
    );
    let bad_ns: Namespace = serde_json::from_value(serde_json::json!(["app", ""])).unwrap();
    assert_eq!(
        bad(MemoryQuery {
            namespace_prefix: Some(bad_ns),
            ..Default::default()
        }),
        "invalid_input"
    );
}

/// Metadata conditions on a memory list, as search has them: typed comparisons, `ne`
/// including memories without the key, every condition holding, bad ones refused.
#[test]
fn list_filters_on_metadata_conditions() {
    use agentstore::search::{MetadataCondition, MetadataOp};
    let t = store();
    let s = &t.scope;
    let mk = |id: &str, metadata: serde_json::Value| {
        let mut m = NewMemory::new(format!("knowledge state {id}"));
        m.id = Some(id.into());
        m.key = Some(id.into());
        m.metadata = metadata;
        m
    };
    t.store
        .remember_many(
            s,
            vec![
                mk(
                    "k-low",
                    serde_json::json!({"mastery": 0.3, "domain": "math"}),
                ),
                mk(
                    "k-high",
                    serde_json::json!({"mastery": 0.8, "domain": "math"}),
                ),
                mk(
                    "k-text",
                    serde_json::json!({"mastery": "0.1", "domain": "art"}),
                ),
                mk("k-none", serde_json::json!({})),
            ],
        )
        .unwrap();
    let q = |conds: Vec<MetadataCondition>| {
        id_set(
            &t,
            MemoryQuery {
                metadata: conds,
                ..Default::default()
            },
        )
    };
    let c = |text: &str| MetadataCondition::parse(text).unwrap();
    assert_eq!(q(vec![c("mastery:lt:0.5")]), set(&["k-low"]));
    assert_eq!(q(vec![c("mastery:gte:0.3")]), set(&["k-low", "k-high"]));
    // A string compares with strings only.
    assert_eq!(q(vec![c("mastery:eq:\"0.1\"")]), set(&["k-text"]));
    assert_eq!(
        q(vec![c("domain:eq:math"), c("mastery:gt:0.5")]),
        set(&["k-high"])
    );
    assert_eq!(q(vec![c("domain:ne:math")]), set(&["k-text", "k-none"]));
    assert_eq!(
        q(vec![MetadataCondition::new(
            "mastery",
            MetadataOp::Lte,
            0.8
        )]),
        set(&["k-low", "k-high"])
    );
    for bad in [
        "mastery",
        "mastery:lt",
        "mastery:like:0.5",
        "a..b:eq:1",
        "ok:lt:true",
    ] {
        let e = MetadataCondition::parse(bad).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{bad}: {e}");
    }
    let e = t
        .store
        .list_memories(
            s,
            MemoryQuery {
                metadata: vec![MetadataCondition::new("bad path", MetadataOp::Eq, 1)],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input", "{e}");
}

#[test]
fn list_filters_on_confidence_success_rate_and_change_time() {
    let t = store();
    let s = &t.scope;
    let mk = |id: &str, confidence: Option<f64>, success_rate: Option<f64>| {
        let mut m = NewMemory::new(format!("content of {id}"));
        m.id = Some(id.into());
        m.key = Some(id.into());
        m.confidence = confidence;
        m.success_rate = success_rate;
        m
    };
    t.store
        .remember_many(
            s,
            vec![
                mk("m-a", Some(0.9), Some(0.8)),
                mk("m-b", Some(0.5), None),
                mk("m-c", Some(0.7), Some(0.4)),
                mk("m-d", None, None),
            ],
        )
        .unwrap();
    let q = |f: &dyn Fn(&mut MemoryQuery)| {
        let mut q = MemoryQuery::default();
        f(&mut q);
        id_set(&t, q)
    };
    // The bounds are inclusive; confidence defaults to 1.
    assert_eq!(
        q(&|q| q.min_confidence = Some(0.7)),
        set(&["m-a", "m-c", "m-d"])
    );
    assert_eq!(q(&|q| q.min_confidence = Some(0.95)), set(&["m-d"]));
    assert_eq!(q(&|q| q.min_success_rate = Some(0.5)), set(&["m-a"]));
    // A memory without a success rate never meets a minimum, not even 0.
    assert_eq!(q(&|q| q.min_success_rate = Some(0.0)), set(&["m-a", "m-c"]));
    assert_eq!(
        q(&|q| {
            q.min_confidence = Some(0.8);
            q.min_success_rate = Some(0.4);
        }),
        set(&["m-a"])
    );

    std::thread::sleep(std::time::Duration::from_millis(2));
    let mark = now();
    assert_eq!(q(&|q| q.updated_from = Some(mark)), set(&[]));
    let mut b = mk("m-b", Some(0.6), Some(0.3));
    b.importance = Some(0.1);
    assert_eq!(
        t.store.remember(s, b).unwrap(),
        UpsertOutcome::Updated { id: "m-b".into() }
    );
    assert_eq!(q(&|q| q.updated_from = Some(mark)), set(&["m-b"]));
    // A read is not a change.
    t.store.touch_memories(s, &["m-a".into()]).unwrap();
    assert_eq!(q(&|q| q.updated_from = Some(mark)), set(&["m-b"]));

    let ordered = |order: MemoryOrder| {
        let page = t
            .store
            .list_memories(
                s,
                MemoryQuery {
                    order,
                    ..Default::default()
                },
            )
            .unwrap();
        ids_of(&page.items)
    };
    assert_eq!(
        ordered(MemoryOrder::Confidence),
        ["m-d", "m-a", "m-c", "m-b"]
    );
    assert_eq!(
        ordered(MemoryOrder::SuccessRate),
        ["m-a", "m-c", "m-b", "m-d"]
    );
    assert_eq!(
        ordered(MemoryOrder::AccessCount),
        ["m-a", "m-d", "m-c", "m-b"]
    );
    assert_eq!(ordered(MemoryOrder::Updated)[0], "m-b");

    let bad = |q: MemoryQuery| t.store.list_memories(s, q).unwrap_err();
    for (field, q) in [
        (
            "min_confidence",
            MemoryQuery {
                min_confidence: Some(f64::NAN),
                ..Default::default()
            },
        ),
        (
            "min_success_rate",
            MemoryQuery {
                min_success_rate: Some(f64::INFINITY),
                ..Default::default()
            },
        ),
    ] {
        let err = bad(q);
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// What `order` sorts by, most significant first; every order is descending.
type SortKey = (f64, bool, i64, i64, String);

fn sort_key(order: MemoryOrder, m: &Memory) -> SortKey {
    let created = to_micros(&m.created_at);
    let id = m.id.clone();
    match order {
        MemoryOrder::Priority => (0.0, m.pinned, m.priority, created, id),
        MemoryOrder::Importance => (m.importance, false, 0, created, id),
        MemoryOrder::Confidence => (m.confidence, false, 0, created, id),
        // Memories without a success rate come after every rate.
        MemoryOrder::SuccessRate => (m.success_rate.unwrap_or(-1.0), false, 0, created, id),
        MemoryOrder::AccessCount => (0.0, false, m.access_count, created, id),
        MemoryOrder::Updated => (0.0, false, 0, to_micros(&m.updated_at), id),
        _ => (0.0, false, 0, created, id),
    }
}

#[test]
fn orders_paginate_without_duplicates_or_gaps() {
    let t = store();
    let s = &t.scope;
    let mk = |i: usize| {
        let mut m = NewMemory::new(format!("memory number {i}"));
        m.id = Some(format!("p-{i:02}"));
        m.key = Some(format!("k-{i:02}"));
        m.pinned = i.is_multiple_of(7);
        m.priority = (i % 3) as i64;
        m.importance = Some((i % 4) as f64 / 4.0);
        m.confidence = Some((i % 5) as f64 / 5.0);
        m.success_rate = (!i.is_multiple_of(3)).then(|| (i % 4) as f64 / 4.0);
        m
    };
    // One batch shares one created_at, so pages must break ties on id.
    t.store.remember_many(s, (0..30).map(mk).collect()).unwrap();
    for i in 30..40 {
        t.store.remember(s, mk(i)).unwrap();
    }
    // Reads for the access-count order, ties included.
    for i in [4usize, 9, 9, 22, 22, 35] {
        t.store.touch_memories(s, &[format!("p-{i:02}")]).unwrap();
    }
    // Three memories changed in place (same content, new confidence) after the rest:
    // they lead the `updated` order and are the only ones changed since `mark`.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mark = now();
    for i in [3usize, 17, 31] {
        let mut m = mk(i);
        m.confidence = Some(0.95);
        let out = t.store.remember(s, m).unwrap();
        assert_eq!(
            out,
            UpsertOutcome::Updated {
                id: format!("p-{i:02}")
            }
        );
    }
    let since_mark = MemoryQuery {
        updated_from: Some(mark),
        ..Default::default()
    };
    assert_eq!(id_set(&t, since_mark), set(&["p-03", "p-17", "p-31"]));
    for order in [
        MemoryOrder::Recent,
        MemoryOrder::Priority,
        MemoryOrder::Importance,
        MemoryOrder::Confidence,
        MemoryOrder::SuccessRate,
        MemoryOrder::AccessCount,
        MemoryOrder::Updated,
    ] {
        let all = t
            .store
            .list_memories(
                s,
                MemoryQuery {
                    order,
                    limit: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(all.items.len(), 40);
        assert!(all.next.is_none());
        let mut expected = all.items.clone();
        expected.sort_by(|a, b| {
            let (sa, pa, ra, ca, ia) = sort_key(order, a);
            let (sb, pb, rb, cb, ib) = sort_key(order, b);
            sb.total_cmp(&sa)
                .then_with(|| (pb, rb, cb, ib).cmp(&(pa, ra, ca, ia)))
        });
        assert_eq!(ids_of(&all.items), ids_of(&expected), "{order:?} order");
        let first = ids_of(&all.items[..3]);
        match order {
            MemoryOrder::SuccessRate => {
                // The 14 memories without a rate (i divisible by 3) close the list.
                assert!(all.items[26..].iter().all(|m| m.success_rate.is_none()));
                assert!(all.items[..26].iter().all(|m| m.success_rate.is_some()));
            }
            MemoryOrder::AccessCount => assert_eq!(first, ["p-22", "p-09", "p-35"]),
            MemoryOrder::Updated => assert_eq!(first, ["p-31", "p-17", "p-03"]),
            MemoryOrder::Confidence => assert_eq!(first, ["p-31", "p-17", "p-03"]),
            _ => {}
        }

        let mut paged = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = t
                .store
                .list_memories(
                    s,
                    MemoryQuery {
                        order,
                        limit: 7,
                        after: after.take(),
                        ..Default::default()
                    },
                )
                .unwrap();
            assert!(page.items.len() <= 7);
            paged.extend(ids_of(&page.items));
            pages += 1;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 6, "{order:?}");
        assert_eq!(paged, ids_of(&all.items), "{order:?} pages");
    }

    // A cursor of one order is not accepted by another, and garbage is bad input.
    let recent_cursor = t
        .store
        .list_memories(
            s,
            MemoryQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap()
        .next
        .unwrap();
    for (order, cursor) in [
        (MemoryOrder::Priority, recent_cursor.as_str()),
        (MemoryOrder::Importance, recent_cursor.as_str()),
        (MemoryOrder::Recent, "garbage"),
        (MemoryOrder::Recent, "p:1:0:5:p-01"),
        (MemoryOrder::Priority, "p:2:0:5:p-01"),
        (MemoryOrder::Priority, "p:1:x:5:p-01"),
        (MemoryOrder::Priority, "p:1:0"),
        (MemoryOrder::Importance, "i:NaN:5:p-01"),
        (MemoryOrder::Importance, "i:0.5"),
        (MemoryOrder::Confidence, recent_cursor.as_str()),
        (MemoryOrder::Confidence, "i:0.5:5:p-01"),
        (MemoryOrder::SuccessRate, "c:0.5:5:p-01"),
        (MemoryOrder::SuccessRate, "s:inf:5:p-01"),
        (MemoryOrder::AccessCount, "a:1.5:5:p-01"),
        (MemoryOrder::AccessCount, "a:1:5"),
        (MemoryOrder::Updated, recent_cursor.as_str()),
        (MemoryOrder::Updated, "u:x:p-01"),
        (MemoryOrder::Updated, "u:5"),
    ] {
        let err = t
            .store
            .list_memories(
                s,
                MemoryQuery {
                    order,
                    after: Some(cursor.into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{order:?} {cursor}");
    }
}

#[test]
fn tenants_cannot_see_or_change_each_others_memories() {
    let t = store();
    let s = &t.scope;
    let mut m = keyed("secret plan", "plan");
    m.id = Some("shared-id".into());
    created(t.store.remember(s, m).unwrap());
    let other = t.other_tenant();
    let root = Namespace::root();

    assert_eq!(
        t.store.get_memory(&other, "shared-id").unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store
            .get_memory_by_key(&other, &root, "plan", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(
        t.store
            .memory_history(&other, &root, "plan")
            .unwrap()
            .is_empty()
    );
    assert!(
        t.store
            .list_memories(&other, MemoryQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        t.store.forget(&other, "shared-id").unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store
            .invalidate_memory(&other, "shared-id")
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        t.store
            .touch_memories(&other, &["shared-id".into()])
            .unwrap(),
        0
    );

    // Same id, key and content in the other tenant: a new record, no dedupe or supersede.
    let mut m = keyed("secret plan", "plan");
    m.id = Some("shared-id".into());
    assert_eq!(
        t.store.remember(&other, m).unwrap(),
        UpsertOutcome::Created {
            id: "shared-id".into()
        }
    );
    let mine = t.store.get_memory(s, "shared-id").unwrap();
    assert!(mine.valid_to.is_none());
    assert_eq!((mine.tenant_id.as_str(), mine.access_count), ("t1", 0));

    // A raw write of a record built for t1 under t2's scope is refused.
    let mut forged = mine.clone();
    forged.id = "forged".into();
    let err = t
        .store
        .write(
            &other,
            vec![WriteOp::Remember {
                memory: forged,
                vector: None,
            }],
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert_eq!(
        t.store.get_memory(s, "forged").unwrap_err().code(),
        "not_found"
    );
}

#[test]
fn forget_invalidate_and_touch() {
    let t = store();
    let s = &t.scope;
    let root = Namespace::root();
    let v1 = created(t.store.remember(s, keyed("first", "k")).unwrap());
    let v2 = t
        .store
        .remember(s, keyed("second", "k"))
        .unwrap()
        .id()
        .to_owned();

    // Forgetting the current version deletes it; the predecessor keeps its pointer.
    t.store.forget(s, &v2).unwrap();
    assert_eq!(t.store.get_memory(s, &v2).unwrap_err().code(), "not_found");
    let old = t.store.get_memory(s, &v1).unwrap();
    assert_eq!(old.superseded_by.as_deref(), Some(v2.as_str()));
    assert!(old.valid_to.is_some());
    assert_eq!(
        t.store
            .get_memory_by_key(s, &root, "k", None)
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        ids_of(&t.store.memory_history(s, &root, "k").unwrap()),
        [v1]
    );
    assert_eq!(t.store.forget(s, &v2).unwrap_err().code(), "not_found");
    // With no current version left, the key starts afresh.
    created(t.store.remember(s, keyed("third", "k")).unwrap());

    // Invalidate closes validity without a successor, once.
    let x = created(t.store.remember(s, NewMemory::new("soon wrong")).unwrap());
    let before = now();
    t.store.invalidate_memory(s, &x).unwrap();
    let closed = t.store.get_memory(s, &x).unwrap();
    assert!(closed.valid_to.is_some_and(|v| v >= before));
    assert!(closed.superseded_by.is_none());
    assert!(!id_set(&t, MemoryQuery::default()).contains(&x));
    assert!(
        id_set(
            &t,
            MemoryQuery {
                valid_at: Some(closed.valid_from),
                ..Default::default()
            }
        )
        .contains(&x)
    );
    assert_eq!(
        t.store.invalidate_memory(s, &x).unwrap_err().code(),
        "conflict"
    );
    assert_eq!(
        t.store.invalidate_memory(s, "missing").unwrap_err().code(),
        "not_found"
    );

    // Touch counts one read per distinct known id, with one audit entry per call.
    let a = created(t.store.remember(s, NewMemory::new("a")).unwrap());
    let b = created(t.store.remember(s, NewMemory::new("b")).unwrap());
    let accesses = |t: &TestStore| {
        audit_actions(t)
            .iter()
            .filter(|x| *x == "memory.access")
            .count()
    };
    let at = now();
    let n = t
        .store
        .touch_memories(s, &[a.clone(), a.clone(), b.clone(), "missing".into()])
        .unwrap();
    assert_eq!(n, 2);
    let ma = t.store.get_memory(s, &a).unwrap();
    assert_eq!(ma.access_count, 1);
    assert!(ma.last_accessed_at.is_some_and(|l| l >= at));
    assert_eq!(accesses(&t), 1);
    let entry = t
        .store
        .list_audit(AuditQuery {
            action: Some("memory.access".into()),
            ..Default::default()
        })
        .unwrap()
        .items
        .pop()
        .unwrap();
    assert_eq!(entry.new_values.unwrap()["count"], 2);
    t.store.touch_memories(s, std::slice::from_ref(&a)).unwrap();
    assert_eq!(t.store.get_memory(s, &a).unwrap().access_count, 2);
    assert_eq!(t.store.get_memory(s, &b).unwrap().access_count, 1);
    assert_eq!(t.store.touch_memories(s, &[]).unwrap(), 0);
    assert_eq!(t.store.touch_memories(s, &["missing".into()]).unwrap(), 0);
    assert_eq!(accesses(&t), 2);

    let actions = audit_actions(&t);
    assert!(actions.contains(&"memory.forget".to_string()));
    assert!(actions.contains(&"memory.invalidate".to_string()));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let t = store();
    let s = &t.scope;
    let audited = audit_actions(&t).len();
    let code = |m: NewMemory| t.store.remember(s, m).unwrap_err().code();

    let huge = "x".repeat(t.store.limits().max_content_bytes + 1);
    assert_eq!(code(NewMemory::new(huge)), "too_large");
    assert_eq!(code(NewMemory::new("")), "invalid_input");
    let mut m = NewMemory::new("tiered");
    m.tier = Some("forever".into());
    assert_eq!(code(m), "invalid_input");
    let mut m = NewMemory::new("important");
    m.importance = Some(1.5);
    assert_eq!(code(m), "invalid_input");
    let m: NewMemory =
        serde_json::from_value(serde_json::json!({"namespace": ["a", ""], "content": "x"}))
            .unwrap();
    assert_eq!(code(m), "invalid_input");
    let mut m = NewMemory::new("bad id");
    m.id = Some("has space".into());
    assert_eq!(code(m), "invalid_input");
    let mut m = NewMemory::new("about someone");
    m.subject_id = Some("nobody".into());
    assert_eq!(code(m), "not_found");
    let mut m = NewMemory::new("by someone");
    m.agent_id = Some("no-agent".into());
    assert_eq!(code(m), "not_found");

    // One bad memory in a batch rolls back the good ones before it.
    let mut bad = NewMemory::new("bad ref");
    bad.subject_id = Some("nobody".into());
    let err = t
        .store
        .remember_many(s, vec![keyed("good", "k"), bad])
        .unwrap_err();
    assert_eq!(err.code(), "not_found");

    assert_eq!(audit_actions(&t).len(), audited);
    assert!(
        t.store
            .list_memories(
                s,
                MemoryQuery {
                    include_expired: true,
                    ..Default::default()
                }
            )
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        t.store
            .memory_history(s, &Namespace::root(), "k")
            .unwrap()
            .is_empty()
    );
}
