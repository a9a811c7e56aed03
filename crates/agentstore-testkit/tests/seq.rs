//! Event seqs under concurrent writers: threads sharing one `Store`, a second `Store` on
//! the same directory (its own writer connection, as another process would have), and
//! real separate processes. Whatever interleaving happens, a session's seqs must be
//! exactly 1..=total and every batch must occupy a contiguous run of them, in order.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use agentstore::{NewEvent, NewSession, Scope, Store};
use agentstore_sqlite::OpenOptions;
use agentstore_testkit::*;
use proptest::prelude::*;

const SESSION: &str = "shared";

fn new_store(dir: &std::path::Path) -> (Store, Scope) {
    let store = agentstore_sqlite::open(&writer_options(dir)).expect("create store");
    store.ensure_tenant(ACTOR, TENANT).expect("tenant");
    let scope = scope();
    store
        .create_session(
            &scope,
            NewSession {
                id: Some(SESSION.into()),
                ..NewSession::new("seq-test")
            },
        )
        .expect("session");
    (store, scope)
}

fn content(thread: usize, batch: usize, index: usize) -> String {
    format!("thread {thread} batch {batch} event {index}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// `plan[t]` lists the batch sizes thread `t` appends. Even threads write through the
    /// shared store, odd ones through the second store, so both the in-process writer
    /// mutex and SQLite's file lock between connections are exercised.
    #[test]
    fn concurrent_appends_get_contiguous_seqs(
        plan in prop::collection::vec(prop::collection::vec(1usize..=60, 1..=6), 2..=6)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (shared, scope) = new_store(&data);
        let second = agentstore_sqlite::open(&OpenOptions::new(&data)).expect("second store");
        let barrier = Arc::new(Barrier::new(plan.len()));

        let handles: Vec<_> = plan
            .iter()
            .cloned()
            .enumerate()
            .map(|(t, sizes)| {
                let store = if t.is_multiple_of(2) { shared.clone() } else { second.clone() };
                let scope = scope.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    sizes
                        .iter()
                        .enumerate()
                        .map(|(b, &n)| {
                            let events = (0..n)
                                .map(|i| NewEvent::message("user", content(t, b, i)))
                                .collect();
                            let written = store.append_events(&scope, SESSION, events).unwrap();
                            written.iter().map(|e| e.seq).collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let returned: Vec<Vec<Vec<i64>>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();

        let total: usize = plan.iter().flatten().sum();
        let events = all_events(&shared, &scope, SESSION).unwrap();
        prop_assert_eq!(events.len(), total);
        let seq_of: HashMap<&str, i64> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                assert_eq!(e.seq, i as i64 + 1, "seqs are not exactly 1..=total");
                (e.content.as_deref().unwrap(), e.seq)
            })
            .collect();
        for (t, sizes) in plan.iter().enumerate() {
            let mut previous_end = 0;
            for (b, &n) in sizes.iter().enumerate() {
                let stored: Vec<i64> =
                    (0..n).map(|i| seq_of[content(t, b, i).as_str()]).collect();
                // What append_events returned is what was stored.
                prop_assert_eq!(&stored, &returned[t][b]);
                let first = stored[0];
                prop_assert_eq!(stored, (first..first + n as i64).collect::<Vec<_>>());
                // A thread's batches commit one after another, so seqs grow across them.
                prop_assert!(first > previous_end, "thread {} batch {} went backwards", t, b);
                previous_end = first + n as i64 - 1;
            }
        }
    }
}

/// Three writer processes append to one session at once; their acknowledged batches must
/// tile 1..=total exactly, each holding its own events in order.
#[test]
fn writer_processes_share_a_session_without_gaps_or_overlaps() {
    const WRITERS: u64 = 3;
    const BATCHES: u64 = 40;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Created up front: the writers then race only on appends, not on initialisation.
    let (store, scope) = new_store(&data);

    let children: Vec<_> = (0..WRITERS)
        .map(|seed| {
            Command::new(env!("CARGO_BIN_EXE_crash-writer"))
                .arg("--dir")
                .arg(&data)
                .args(["--session", SESSION])
                .args(["--batches", &BATCHES.to_string()])
                .args(["--seed", &(seed + 1).to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start crash-writer")
        })
        .collect();

    let mut ledger = Ledger::default();
    for child in children {
        let out = child.wait_with_output().expect("wait for writer");
        assert!(out.status.success(), "writer failed: {}", out.status);
        let text = String::from_utf8(out.stdout).expect("utf-8 output");
        let mut lines = text.lines().map(|l| Ack::parse(l).unwrap());
        let Some(Ack::Ready { run, .. }) = lines.next() else {
            panic!("writer did not start with READY:\n{text}");
        };
        let mut batches = 0;
        for ack in lines {
            batches += u64::from(matches!(ack, Ack::Events { .. }));
            ledger.record(&run, ack);
        }
        assert_eq!(batches, BATCHES, "batches acknowledged by writer {run}");
    }

    let summary = ledger.check(&store, &scope, SESSION);
    assert_eq!(summary.events, summary.acked_events);
    let mut ranges = ledger.batch_ranges();
    ranges.sort_unstable();
    let mut next = 1;
    for (first, last) in ranges {
        assert_eq!(first, next, "batches do not tile the session's seqs");
        next = last + 1;
    }
    assert_eq!(next - 1, summary.events);
}
