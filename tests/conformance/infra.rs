//! Infrastructure: the key-value store (versions, TTLs, rate-limit counters, literal
//! prefixes), fenced locks, tokens and counters surviving a restart, and the sweep of
//! expired records with their dependents. The SQLite backend also counts, with SQL on its
//! database file, the rows that sweep left (`sqlite_infra.rs`, on [`seed_expired`]'s
//! data).

use std::thread::sleep;
use std::time::Duration;

use agentstore::backend::{AuditQuery, EventQuery, SweepReport, WriteOp, WriteResult};
use agentstore::time::{from_micros, now};
use agentstore::{
    Error, NewCheckpoint, NewEvent, NewMemory, NewPendingWrite, NewSession, Payload, Scope, Store,
    Timestamp,
};
use serde_json::json;

use crate::common::{TestStore, store};

pub(crate) fn shift(t: Timestamp, ms: i64) -> Timestamp {
    from_micros(t.timestamp_micros() + ms * 1000)
}

pub(crate) fn audit_count(store: &Store, tenant: &str, action: &str) -> usize {
    store
        .list_audit(AuditQuery {
            tenant_id: Some(tenant.into()),
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items
        .len()
}

/// A key that expired `ms` ago, written through the raw op (the engine only takes TTLs).
pub(crate) fn set_expired(store: &Store, scope: &Scope, key: &str, ms: i64) {
    let at = now();
    store
        .write(
            scope,
            vec![WriteOp::KvSet {
                key: key.into(),
                value: json!("old"),
                expires_at: Some(shift(at, -ms)),
                at: shift(at, -2 * ms),
            }],
        )
        .unwrap();
}

// ------------------------------------------------------------------------- key-value

#[test]
fn kv_set_get_list_versions_and_ttl() {
    let t = store();
    let s = &t.scope;
    let e1 = t.store.kv_set(s, "user:1", json!({"n": 1}), None).unwrap();
    assert_eq!((e1.version, e1.expires_at), (1, None));
    let e2 = t.store.kv_set(s, "user:1", json!({"n": 2}), None).unwrap();
    assert_eq!(e2.version, 2);
    assert_eq!(t.store.kv_get(s, "user:1").unwrap(), Some(e2));
    t.store.kv_set(s, "user:3", json!(3), None).unwrap();
    t.store.kv_set(s, "user:2", json!(2), None).unwrap();
    t.store.kv_set(s, "other", json!(0), None).unwrap();
    let short = t.store.kv_set(s, "user:4", json!(4), Some(500)).unwrap();
    assert!(short.expires_at.is_some());
    let keys = |prefix: &str, limit: usize| -> Vec<String> {
        t.store
            .kv_list(s, prefix, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(keys("user:", 0), ["user:1", "user:2", "user:3", "user:4"]);
    assert_eq!(keys("user:", 2), ["user:1", "user:2"]);
    assert_eq!(
        keys("", 0),
        ["other", "user:1", "user:2", "user:3", "user:4"]
    );

    sleep(Duration::from_millis(600));
    assert_eq!(t.store.kv_get(s, "user:4").unwrap(), None);
    assert_eq!(keys("user:", 0), ["user:1", "user:2", "user:3"]);
    assert!(!t.store.kv_expire(s, "user:4", Some(60_000)).unwrap());
    assert!(
        !t.store.kv_delete(s, "user:4").unwrap(),
        "an expired key did not exist"
    );

    // A key written with an expiry in the past is not readable at all.
    set_expired(&t.store, s, "gone", 1000);
    assert_eq!(t.store.kv_get(s, "gone").unwrap(), None);
    // Rewriting an expired key keeps counting versions, so a stale version never matches.
    let again = t.store.kv_set(s, "gone", json!("new"), None).unwrap();
    assert_eq!(again.version, 2);

    // Expiry can be set and cleared on a live key.
    assert!(t.store.kv_expire(s, "user:1", Some(60_000)).unwrap());
    let e = t.store.kv_get(s, "user:1").unwrap().unwrap();
    assert!(e.expires_at.is_some_and(|x| x > now()));
    assert_eq!(e.version, 3);
    assert!(t.store.kv_expire(s, "user:1", None).unwrap());
    assert_eq!(
        t.store.kv_get(s, "user:1").unwrap().unwrap().expires_at,
        None
    );
    assert!(!t.store.kv_expire(s, "missing", None).unwrap());

    assert!(t.store.kv_delete(s, "user:2").unwrap());
    assert!(!t.store.kv_delete(s, "user:2").unwrap());
    assert_eq!(t.store.kv_get(s, "user:2").unwrap(), None);

    // kv.set: 6 live sets, the expired one and its rewrite; kv.expire: the 2 changes of a
    // live key; kv.delete: the expired row (removed, though it reported 0) and user:2.
    assert_eq!(audit_count(&t.store, "t1", "kv.set"), 8);
    assert_eq!(audit_count(&t.store, "t1", "kv.expire"), 2);
    assert_eq!(audit_count(&t.store, "t1", "kv.delete"), 2);
}

#[test]
fn kv_incr_is_a_fixed_window_rate_limiter() {
    let t = store();
    let s = &t.scope;
    let limit = 3;
    let allowed = |n: i64| n <= limit;
    let counts: Vec<i64> = (0..5)
        .map(|_| t.store.kv_incr(s, "rl:alice", 1, Some(1000)).unwrap())
        .collect();
    assert_eq!(counts, [1, 2, 3, 4, 5]);
    assert_eq!(counts.iter().filter(|&&n| allowed(n)).count(), 3);
    // Increments keep the window's expiry instead of extending it.
    let first = t.store.kv_get(s, "rl:alice").unwrap().unwrap();
    t.store.kv_incr(s, "rl:alice", 1, Some(60_000)).unwrap();
    assert_eq!(
        t.store.kv_get(s, "rl:alice").unwrap().unwrap().expires_at,
        first.expires_at
    );
    sleep(Duration::from_millis(1100));
    // The window ran out: the count starts again with a new expiry.
    assert_eq!(t.store.kv_incr(s, "rl:alice", 1, Some(60_000)).unwrap(), 1);
    let fresh = t.store.kv_get(s, "rl:alice").unwrap().unwrap();
    assert!(fresh.expires_at > first.expires_at);
    assert_eq!(t.store.kv_incr(s, "rl:alice", -3, None).unwrap(), -2);
    assert_eq!(audit_count(&t.store, "t1", "kv.incr"), 8);

    // A value that is not an integer cannot be incremented, and stays as it was.
    t.store.kv_set(s, "name", json!("bob"), None).unwrap();
    t.store.kv_set(s, "ratio", json!(1.5), None).unwrap();
    t.store.kv_set(s, "big", json!(i64::MAX), None).unwrap();
    for key in ["name", "ratio", "big"] {
        let err = t.store.kv_incr(s, key, 1, None).unwrap_err();
        assert_eq!(err.code(), "conflict", "{key}");
    }
    assert_eq!(
        t.store.kv_get(s, "name").unwrap().unwrap().value,
        json!("bob")
    );
    assert_eq!(t.store.kv_get(s, "big").unwrap().unwrap().version, 1);
    assert_eq!(audit_count(&t.store, "t1", "kv.incr"), 8);
}

#[test]
fn kv_delete_prefix_treats_wildcards_literally() {
    let t = store();
    let s = &t.scope;
    for key in [
        "a%b", "a%c", "abc", "a_x", "a_y", "aZx", "a\\1", "a\\2", "b%",
    ] {
        t.store.kv_set(s, key, json!(key), None).unwrap();
    }
    assert_eq!(t.store.kv_delete_prefix(s, "a%").unwrap(), 2);
    assert_eq!(t.store.kv_delete_prefix(s, "a_").unwrap(), 2);
    assert_eq!(t.store.kv_delete_prefix(s, "a\\").unwrap(), 2);
    assert_eq!(t.store.kv_delete_prefix(s, "zzz").unwrap(), 0);
    let left: Vec<String> = t
        .store
        .kv_list(s, "", 0)
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(left, ["aZx", "abc", "b%"]);
    assert_eq!(audit_count(&t.store, "t1", "kv.delete_prefix"), 3);

    // Prefixes at the edges of Unicode select exactly their keys.
    for key in [
        "é",
        "éa",
        "ê",
        "\u{10FFFF}",
        "\u{10FFFF}x",
        "\u{D7FF}z",
        "\u{E000}",
    ] {
        t.store.kv_set(s, key, json!(1), None).unwrap();
    }
    let keys = |prefix: &str| -> Vec<String> {
        t.store
            .kv_list(s, prefix, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(keys("é"), ["é", "éa"]);
    assert_eq!(keys("\u{10FFFF}"), ["\u{10FFFF}", "\u{10FFFF}x"]);
    assert_eq!(keys("\u{D7FF}"), ["\u{D7FF}z"]);
    assert_eq!(t.store.kv_delete_prefix(s, "\u{10FFFF}").unwrap(), 2);
    assert_eq!(keys("\u{E000}"), ["\u{E000}"]);

    // An empty prefix would wipe the tenant's cache: refused, nothing removed.
    let before = t.store.kv_list(s, "", 0).unwrap().len();
    assert_eq!(
        t.store.kv_delete_prefix(s, "").unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(t.store.kv_list(s, "", 0).unwrap().len(), before);
}

#[test]
fn kv_bad_input_and_tenant_isolation() {
    let t = store();
    let s = &t.scope;
    t.store.kv_set(s, "shared:k", json!("t1"), None).unwrap();
    t.store.kv_incr(s, "shared:n", 5, None).unwrap();
    assert_eq!(
        t.store.kv_set(s, "", json!(1), None).unwrap_err().code(),
        "invalid_input"
    );
    let huge = json!("x".repeat(t.store.limits().max_json_bytes + 1));
    assert_eq!(
        t.store.kv_set(s, "k", huge, None).unwrap_err().code(),
        "too_large"
    );
    assert_eq!(t.store.kv_get(s, "k").unwrap(), None);
    let unknown = Scope::new("nosuch", "test");
    assert_eq!(
        t.store
            .kv_set(&unknown, "k", json!(1), None)
            .unwrap_err()
            .code(),
        "not_found"
    );

    let other = t.other_tenant();
    assert_eq!(t.store.kv_get(&other, "shared:k").unwrap(), None);
    assert!(t.store.kv_list(&other, "shared:", 0).unwrap().is_empty());
    assert!(!t.store.kv_delete(&other, "shared:k").unwrap());
    assert_eq!(t.store.kv_delete_prefix(&other, "shared:").unwrap(), 0);
    assert!(!t.store.kv_expire(&other, "shared:k", Some(1)).unwrap());
    assert_eq!(t.store.kv_incr(&other, "shared:n", 1, None).unwrap(), 1);
    t.store
        .kv_set(&other, "shared:k", json!("t2"), None)
        .unwrap();
    assert_eq!(
        t.store.kv_get(s, "shared:k").unwrap().unwrap().value,
        json!("t1")
    );
    assert_eq!(
        t.store.kv_get(s, "shared:n").unwrap().unwrap().value,
        json!(5)
    );
    assert_eq!(
        t.store.kv_get(&other, "shared:k").unwrap().unwrap().version,
        1
    );
}

// ------------------------------------------------------------------------- locks

#[test]
fn lock_tokens_increase_across_acquire_release_and_expiry() {
    let t = store();
    let s = &t.scope;
    let a = t.store.lock_acquire(s, "job", "worker-a", 10_000).unwrap();
    assert_eq!((a.token, a.holder.as_deref()), (1, Some("worker-a")));
    t.store.check_fencing_token(s, "job", 1).unwrap();

    let err = t
        .store
        .lock_acquire(s, "job", "worker-b", 10_000)
        .unwrap_err();
    match &err {
        Error::LockHeld {
            name,
            holder,
            expires_at,
        } => {
            assert_eq!((name.as_str(), holder.as_str()), ("job", "worker-a"));
            assert_eq!(*expires_at, a.expires_at.unwrap().to_rfc3339());
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }
    assert_eq!(err.code(), "lock_held");

    let released = t.store.lock_release(s, "job", 1).unwrap();
    assert_eq!((released.holder, released.token), (None, 1));
    // The row stays so the next token is still larger.
    let row = t.store.get_lock(s, "job").unwrap().unwrap();
    assert_eq!((row.holder, row.token, row.expires_at), (None, 1, None));
    assert_eq!(
        t.store.check_fencing_token(s, "job", 1).unwrap_err().code(),
        "stale_token"
    );

    let b = t.store.lock_acquire(s, "job", "worker-b", 10_000).unwrap();
    assert_eq!(b.token, 2);
    let err = t.store.check_fencing_token(s, "job", 1).unwrap_err();
    assert!(matches!(
        err,
        Error::StaleToken {
            token: 1,
            current: 2,
            ..
        }
    ));
    for err in [
        t.store.lock_release(s, "job", 1).unwrap_err(),
        t.store.lock_renew(s, "job", 1, 10_000).unwrap_err(),
    ] {
        assert!(matches!(
            err,
            Error::StaleToken {
                token: 1,
                current: 2,
                ..
            }
        ));
    }
    let renewed = t.store.lock_renew(s, "job", 2, 60_000).unwrap();
    assert!(renewed.expires_at > b.expires_at);
    assert_eq!(renewed.token, 2);

    // The holder re-acquiring gets a new token, this time with a short lease.
    let b2 = t.store.lock_acquire(s, "job", "worker-b", 50).unwrap();
    assert_eq!(b2.token, 3);
    sleep(Duration::from_millis(100));
    assert_eq!(
        t.store.check_fencing_token(s, "job", 3).unwrap_err().code(),
        "stale_token",
        "an expired lease fences nothing"
    );
    assert_eq!(
        t.store.lock_renew(s, "job", 3, 10_000).unwrap_err().code(),
        "stale_token",
        "an expired lease cannot be renewed"
    );
    // Expired: anyone may take it, with a larger token.
    let a2 = t.store.lock_acquire(s, "job", "worker-a", 10_000).unwrap();
    assert_eq!(a2.token, 4);
    assert!(matches!(
        t.store.lock_release(s, "job", 3).unwrap_err(),
        Error::StaleToken {
            token: 3,
            current: 4,
            ..
        }
    ));
    t.store.check_fencing_token(s, "job", 4).unwrap();

    assert_eq!(audit_count(&t.store, "t1", "lock.acquire"), 4);
    assert_eq!(audit_count(&t.store, "t1", "lock.renew"), 1);
    assert_eq!(audit_count(&t.store, "t1", "lock.release"), 1);
    assert_eq!(
        t.store
            .check_fencing_token(s, "never", 0)
            .unwrap_err()
            .code(),
        "stale_token"
    );
    assert!(matches!(
        t.store.lock_release(s, "never", 1).unwrap_err(),
        Error::StaleToken { current: 0, .. }
    ));
}

#[test]
fn an_expired_lease_may_still_be_released_by_its_holder() {
    let t = store();
    let at = now();
    let r = t
        .store
        .write(
            &t.scope,
            vec![WriteOp::LockAcquire {
                name: "l".into(),
                holder: "h".into(),
                expires_at: shift(at, -5_000),
                at: shift(at, -10_000),
            }],
        )
        .unwrap();
    let WriteResult::Lock(l) = &r[0] else {
        panic!("expected a lock, got {r:?}")
    };
    assert_eq!(l.token, 1);
    assert_eq!(
        t.store
            .lock_renew(&t.scope, "l", 1, 1000)
            .unwrap_err()
            .code(),
        "stale_token"
    );
    let released = t.store.lock_release(&t.scope, "l", 1).unwrap();
    assert_eq!(released.holder, None);
    assert_eq!(
        t.store
            .lock_acquire(&t.scope, "l", "h", 1000)
            .unwrap()
            .token,
        2
    );
}

#[test]
fn locks_bad_input_and_tenant_isolation() {
    let t = store();
    let s = &t.scope;
    assert_eq!(
        t.store.lock_acquire(s, "", "h", 1000).unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        t.store.lock_acquire(s, "l", " ", 1000).unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        t.store.lock_acquire(s, "l", "h", 0).unwrap_err().code(),
        "invalid_input"
    );
    let at = now();
    let err = t
        .store
        .write(
            s,
            vec![WriteOp::LockAcquire {
                name: "l".into(),
                holder: "h".into(),
                expires_at: at,
                at,
            }],
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert_eq!(
        t.store.get_lock(s, "l").unwrap(),
        None,
        "nothing was written"
    );
    assert_eq!(audit_count(&t.store, "t1", "lock.acquire"), 0);

    let held = t.store.lock_acquire(s, "l", "h", 10_000).unwrap();
    let other = t.other_tenant();
    assert_eq!(t.store.get_lock(&other, "l").unwrap(), None);
    assert!(matches!(
        t.store.lock_release(&other, "l", held.token).unwrap_err(),
        Error::StaleToken { current: 0, .. }
    ));
    assert_eq!(
        t.store
            .check_fencing_token(&other, "l", held.token)
            .unwrap_err()
            .code(),
        "stale_token"
    );
    // Same name, other tenant: a separate lock, free, with its own token sequence.
    let theirs = t
        .store
        .lock_acquire(&other, "l", "intruder", 10_000)
        .unwrap();
    assert_eq!(theirs.token, 1);
    t.store.check_fencing_token(s, "l", held.token).unwrap();
    assert_eq!(
        t.store.get_lock(s, "l").unwrap().unwrap().holder.as_deref(),
        Some("h")
    );
}

// ------------------------------------------------------------------------- restart

#[test]
fn tokens_and_counters_survive_a_restart() {
    let t = store();
    let l = t.store.lock_acquire(&t.scope, "job", "a", 60_000).unwrap();
    t.store.lock_release(&t.scope, "job", l.token).unwrap();
    t.store.kv_incr(&t.scope, "n", 41, None).unwrap();
    let reopened = t.reopen();
    assert_eq!(
        reopened
            .lock_acquire(&t.scope, "job", "b", 60_000)
            .unwrap()
            .token,
        l.token + 1,
        "a restarted process never hands out an old token again"
    );
    assert_eq!(reopened.kv_incr(&t.scope, "n", 1, None).unwrap(), 42);
}

// ------------------------------------------------------------------------- sweep

/// Rows of `entity` in the whole store (every tenant), from `stats`.
pub(crate) fn rows(store: &Store, entity: &str) -> u64 {
    store
        .stats()
        .unwrap()
        .entities
        .into_iter()
        .find(|e| e.entity == entity)
        .unwrap_or_else(|| panic!("no entity {entity} in the stats"))
        .rows
}

fn session(store: &Store, scope: &Scope, id: &str, parent: Option<&str>, expired: bool) {
    let mut s = NewSession::new("conversation");
    s.id = Some(id.into());
    s.parent_id = parent.map(Into::into);
    s.expires_at = expired.then(|| shift(now(), -60_000));
    store.create_session(scope, s).unwrap();
}

/// Expired and live records of every kind the sweep looks at, in `t1` and (an expired
/// session and key) in `t2`: session `old` expired with three events, checkpoint `c1`
/// and a pending write; `live` with one event; an expired tree `tree` > `tree.child` >
/// `tree.grandchild` (one event); an expired `parent` of a live `parent.child`; an
/// expired, a fresh and a lasting memory; an expired and a fresh key; a lapsed lock and a
/// held one. Returns the fresh memory's id and `t2`'s scope.
pub(crate) fn seed_expired(t: &TestStore) -> (String, Scope) {
    let s = &t.scope;
    session(&t.store, s, "old", None, true);
    t.store
        .append_events(
            s,
            "old",
            vec![
                NewEvent::message("user", "1"),
                NewEvent::message("assistant", "2"),
                NewEvent::message("user", "3"),
            ],
        )
        .unwrap();
    t.store
        .put_checkpoint(
            s,
            NewCheckpoint {
                session_id: "old".into(),
                checkpoint_ns: String::new(),
                id: Some("c1".into()),
                parent_id: None,
                state: Payload::Json(json!({})),
                metadata: json!({}),
            },
        )
        .unwrap();
    t.store
        .put_pending_writes(
            s,
            "old",
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
    session(&t.store, s, "live", None, false);
    t.store
        .append_event(s, "live", NewEvent::message("user", "keep"))
        .unwrap();
    // An expired tree goes entirely, children first.
    session(&t.store, s, "tree", None, true);
    session(&t.store, s, "tree.child", Some("tree"), true);
    session(&t.store, s, "tree.grandchild", Some("tree.child"), true);
    t.store
        .append_event(s, "tree.grandchild", NewEvent::message("user", "g"))
        .unwrap();
    // An expired parent of a live child stays until the child is gone.
    session(&t.store, s, "parent", None, true);
    session(&t.store, s, "parent.child", Some("parent"), false);

    let mut m = NewMemory::new("stale fact");
    m.expires_at = Some(shift(now(), -1000));
    t.store.remember(s, m).unwrap();
    let mut m = NewMemory::new("fresh fact");
    m.expires_at = Some(shift(now(), 3_600_000));
    let fresh = t.store.remember(s, m).unwrap().id().to_owned();
    t.store.remember(s, NewMemory::new("forever")).unwrap();

    set_expired(&t.store, s, "cache:old", 1000);
    t.store
        .kv_set(s, "cache:new", json!(1), Some(3_600_000))
        .unwrap();
    let at = now();
    t.store
        .write(
            s,
            vec![WriteOp::LockAcquire {
                name: "lapsed".into(),
                holder: "h".into(),
                expires_at: shift(at, -1),
                at: shift(at, -1000),
            }],
        )
        .unwrap();
    t.store.lock_acquire(s, "held", "h", 3_600_000).unwrap();

    // The other tenant's expired records are not this sweep's business.
    let other = t.other_tenant();
    session(&t.store, &other, "old", None, true);
    set_expired(&t.store, &other, "cache:old", 1000);
    (fresh, other)
}

/// The report of the first sweep of [`seed_expired`]'s data in `t1`.
pub(crate) fn first_sweep() -> SweepReport {
    SweepReport {
        sessions: 4,
        events: 4,
        memories: 1,
        kv: 1,
        locks: 1,
        ..Default::default()
    }
}

#[test]
fn sweep_removes_expired_records_with_their_dependents() {
    let t = store();
    let s = &t.scope;
    let (fresh, other) = seed_expired(&t);

    let report = t.store.sweep_expired(s).unwrap();
    assert_eq!(report, first_sweep());
    for gone in ["old", "tree", "tree.child", "tree.grandchild"] {
        assert_eq!(
            t.store.get_session(s, gone).unwrap_err().code(),
            "not_found"
        );
    }
    for kept in ["live", "parent", "parent.child"] {
        t.store.get_session(s, kept).unwrap();
    }
    assert_eq!(
        t.store
            .list_events(
                s,
                EventQuery {
                    session_id: "old".into(),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code(),
        "not_found"
    );
    // The dependents went with their sessions: of every event only `live`'s is left, and
    // no checkpoint or pending write (`t2` has none of these).
    assert_eq!(rows(&t.store, "events"), 1);
    let live = t
        .store
        .list_events(
            s,
            EventQuery {
                session_id: "live".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(live.items.len(), 1);
    assert_eq!(rows(&t.store, "checkpoints"), 0);
    assert_eq!(rows(&t.store, "checkpoint_writes"), 0);
    assert_eq!(
        t.store
            .get_checkpoint(s, "old", "", Some("c1"))
            .unwrap_err()
            .code(),
        "not_found"
    );
    // The fresh and the lasting memory stay (`t2` has none).
    assert_eq!(rows(&t.store, "memories"), 2);
    t.store.get_memory(s, &fresh).unwrap();
    // `t1`'s fresh key and `t2`'s expired one stay.
    assert_eq!(rows(&t.store, "kv_entries"), 2);
    assert!(t.store.kv_get(s, "cache:new").unwrap().is_some());
    let lapsed = t.store.get_lock(s, "lapsed").unwrap().unwrap();
    assert_eq!(
        (lapsed.holder, lapsed.token),
        (None, 1),
        "released, row kept"
    );
    assert!(
        t.store
            .get_lock(s, "held")
            .unwrap()
            .unwrap()
            .holder
            .is_some()
    );
    t.store.get_session(&other, "old").unwrap();

    // One audit entry with the counts; a sweep that finds nothing writes none.
    assert_eq!(audit_count(&t.store, "t1", "retention.sweep"), 1);
    assert_eq!(t.store.sweep_expired(s).unwrap(), SweepReport::default());
    assert_eq!(audit_count(&t.store, "t1", "retention.sweep"), 1);
    let entry = t
        .store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some("retention.sweep".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .items
        .remove(0);
    let v = entry.new_values.unwrap();
    assert_eq!(
        (v["sessions"].clone(), v["events"].clone()),
        (json!(4), json!(4))
    );

    // Once the live child is deleted, its expired parent goes with the next sweep.
    t.store.delete_session(s, "parent.child").unwrap();
    assert_eq!(t.store.sweep_expired(s).unwrap().sessions, 1);

    let theirs = t.store.sweep_expired(&other).unwrap();
    assert_eq!((theirs.sessions, theirs.kv), (1, 1));
    assert_eq!(rows(&t.store, "kv_entries"), 1);
    assert_eq!(
        t.store
            .sweep_expired(&Scope::new("nosuch", "test"))
            .unwrap_err()
            .code(),
        "not_found"
    );
}
