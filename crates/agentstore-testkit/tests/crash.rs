//! Crash consistency under SIGKILL.
//!
//! A `crash-writer` process streams batches of events (plus memory upserts with vectors
//! and KV sets) into one data directory and acknowledges each commit on stdout. The test
//! kills it with SIGKILL at a random moment, reopens the store the way a restarted process
//! would, and checks that every acknowledged write is there, seqs are contiguous, the
//! vector index agrees with the table (each key's current memory version is found by its
//! own vector through the index) and `verify` passes (it also compares every vector index
//! with the `vectors` table). The rounds share the data directory, so each one also
//! recovers from every earlier kill. Each round reads back the events added since the
//! last check (plus every acknowledged memory and KV write); a full check of the whole
//! session ends the test. Kill times come from a seeded RNG; the seed is printed, and
//! `CRASH_SEED=<seed>` replays the same schedule (the kills land in the same places only
//! as far as the OS's timing allows).

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use agentstore_sqlite::OpenOptions;
use agentstore_testkit::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 24;
/// Longest time a writer runs before it is killed.
const MAX_RUN_MS: u64 = 300;
/// Startup (open, migrations, first query) is slow in debug builds on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Kills the child if a failed assertion unwinds past it, so no writer outlives the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Round {
    run: String,
    ready_last_seq: i64,
    acks: Vec<Ack>,
}

/// Starts a writer, lets it write for `run_for` after it is ready, SIGKILLs it and
/// returns every line it completed.
fn run_and_kill(data: &std::path::Path, seed: u64, run_for: Duration) -> Round {
    let child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg("--dir")
        .arg(data)
        .args(["--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash-writer");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("writer stdout");
    let (lines, reader) = spawn_line_reader(stdout);

    let parse = |l: String| Ack::parse(&l).unwrap_or_else(|e| panic!("{e}"));
    let (run, ready_last_seq) = match lines.recv_timeout(READY_TIMEOUT).map(parse) {
        Ok(Ack::Ready { run, last_seq }) => (run, last_seq),
        Ok(other) => panic!("writer's first line is {other}, not READY"),
        Err(e) => panic!(
            "writer did not get ready ({e:?}); exit status {:?}",
            child.0.try_wait()
        ),
    };

    let mut acks = Vec::new();
    let deadline = Instant::now() + run_for;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => acks.push(parse(l)),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "writer stopped before it was killed: {:?}",
                    child.0.try_wait()
                )
            }
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no flush, no checkpoint runs.
    child.0.kill().expect("SIGKILL the writer");
    let status = child.0.wait().expect("reap the writer");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "writer ended by itself ({status}), not by SIGKILL"
        );
    }
    #[cfg(not(unix))]
    assert!(!status.success(), "writer ended by itself ({status})");
    // Lines the writer completed before the kill are still in the pipe.
    reader.join().expect("stdout reader");
    acks.extend(lines.try_iter().map(parse));
    Round {
        run,
        ready_last_seq,
        acks,
    }
}

#[test]
fn sigkilled_writer_loses_no_acknowledged_write() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("CRASH_SEED must be an integer"))
        .unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let scope = scope();
    let mut ledger = Ledger::default();
    let mut events_after_last_round = 0;
    let started = Instant::now();

    for round in 1..=ROUNDS {
        let run_for = Duration::from_millis(rng.random_range(2..=MAX_RUN_MS));
        let r = run_and_kill(&data, rng.random(), run_for);
        assert_eq!(
            r.ready_last_seq, events_after_last_round,
            "round {round}: the writer saw a different session than the last check"
        );
        let acked = r.acks.len();
        for a in r.acks {
            ledger.record(&r.run, a);
        }

        let store = agentstore_sqlite::open(&OpenOptions::new(&data)).expect("reopen the store");
        let summary = ledger.check_since(&store, &scope, DEFAULT_SESSION, events_after_last_round);
        println!(
            "round {round}: killed after {run_for:?} and {acked} acks; {} events ({} acked), \
             {} memory versions, {} KV keys acked",
            summary.events, summary.acked_events, summary.acked_memories, summary.acked_kv_keys
        );
        events_after_last_round = summary.events;
    }
    let store = agentstore_sqlite::open(&OpenOptions::new(&data)).expect("reopen the store");
    let summary = ledger.check(&store, &scope, DEFAULT_SESSION);
    assert_eq!(summary.events, events_after_last_round);
    assert!(
        ledger.acked_events() > 0,
        "no write was acknowledged in {ROUNDS} rounds, so nothing was tested"
    );
    println!("{ROUNDS} kills in {:?}", started.elapsed());
}
