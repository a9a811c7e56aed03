//! `crash-writer`: appends batches of events to one session for ever (or for `--batches`
//! batches), with a memory upsert every few batches and a KV set every few more, and
//! acknowledges each committed write with one flushed line on stdout (see
//! `agentstore_testkit::Ack`). The crash test SIGKILLs it and checks that everything it
//! acknowledged survived.
//!
//! Usage: `crash-writer --dir DIR [--session ID] [--batches N] [--seed N]`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use agentstore::backend::EventQuery;
use agentstore::codec::sha256_hex;
use agentstore::{Error, NewEvent, NewMemory, NewSession, Store};
use agentstore_testkit::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Largest batch of events.
const MAX_BATCH: usize = 200;
/// A memory upsert after every this many batches.
const MEMORY_EVERY: u64 = 5;
/// A KV set after every this many batches.
const KV_EVERY: u64 = 7;

struct Args {
    dir: PathBuf,
    session: String,
    batches: Option<u64>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut dir = None;
    let mut session = DEFAULT_SESSION.to_owned();
    let mut batches = None;
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--session" => session = value()?,
            "--batches" => {
                let v = value()?;
                batches = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--batches must be a positive integer: {v}"))?,
                );
            }
            "--seed" => {
                let v = value()?;
                seed = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("--seed must be an integer: {v}"))?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or("--dir is required")?,
        session,
        batches,
        seed: seed.unwrap_or_else(rand::random),
    })
}

fn ensure_session(store: &Store, id: &str) -> agentstore::Result<()> {
    let scope = scope();
    match store.get_session(&scope, id) {
        Ok(_) => Ok(()),
        Err(Error::NotFound { .. }) => {
            let s = NewSession {
                id: Some(id.into()),
                ..NewSession::new("crash-test")
            };
            match store.create_session(&scope, s) {
                // Another writer process created it first.
                Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Writes and acknowledges until `args.batches` (or until killed).
fn run(args: &Args, out: &mut impl Write) -> Result<(), String> {
    // Durability::Normal (see `writer_options`): a SIGKILL leaves committed WAL frames in
    // the OS page cache, so they survive without an fsync per commit; only power loss
    // needs Durability::Full, and killing a process cannot simulate that.
    let store = agentstore_sqlite::open(&writer_options(&args.dir)).map_err(|e| e.to_string())?;
    let scope = scope();
    store
        .ensure_tenant(ACTOR, TENANT)
        .map_err(|e| e.to_string())?;
    ensure_session(&store, &args.session).map_err(|e| e.to_string())?;
    let last_seq = store
        .list_events(
            &scope,
            EventQuery {
                session_id: args.session.clone(),
                descending: true,
                limit: 1,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?
        .items
        .first()
        .map_or(0, |e| e.seq);
    let mut rng = StdRng::seed_from_u64(args.seed);
    // The seed names the run: contents written by different runs never collide, and the
    // test, which chose the seed, knows which contents to expect.
    let run = format!("{:x}", args.seed);
    let mut ack = |a: Ack| -> Result<(), String> {
        writeln!(out, "{a}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))
    };
    ack(Ack::Ready {
        run: run.clone(),
        last_seq,
    })?;

    let mut batch: u64 = 0;
    while args.batches.is_none_or(|n| batch < n) {
        batch += 1;
        let n = rng.random_range(1..=MAX_BATCH);
        let events = (0..n)
            .map(|i| NewEvent::message("user", event_content(&run, batch, i)))
            .collect();
        let written = store
            .append_events(&scope, &args.session, events)
            .map_err(|e| format!("batch {batch}: {e}"))?;
        let (Some(first), Some(last)) = (written.first(), written.last()) else {
            return Err(format!("batch {batch}: no events returned"));
        };
        ack(Ack::Events {
            batch,
            first_seq: first.seq,
            last_seq: last.seq,
            last_event_id: last.id.clone(),
        })?;

        if batch.is_multiple_of(MEMORY_EVERY) {
            let key = memory_key(rng.random_range(0..MEMORY_KEYS));
            let content = memory_content(&run, batch, &key);
            let content_hash = sha256_hex(content.as_bytes());
            let outcome = store
                .remember(
                    &scope,
                    NewMemory {
                        key: Some(key.clone()),
                        vector: Some(memory_vector(&content)),
                        ..NewMemory::new(content)
                    },
                )
                .map_err(|e| format!("batch {batch}: remember {key}: {e}"))?;
            ack(Ack::Memory {
                key,
                content_hash,
                id: outcome.id().to_owned(),
            })?;
        }

        if batch.is_multiple_of(KV_EVERY) {
            let key = kv_key(rng.random_range(0..KV_KEYS));
            let entry = store
                .kv_set(
                    &scope,
                    &key,
                    serde_json::json!({ "run": run, "batch": batch }),
                    None,
                )
                .map_err(|e| format!("batch {batch}: kv_set {key}: {e}"))?;
            ack(Ack::Kv {
                key,
                version: entry.version,
            })?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "crash-writer: {e}\nusage: crash-writer --dir DIR [--session ID] [--batches N] [--seed N]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}
