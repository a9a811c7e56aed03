//! Graceful shutdown of the real `agentstore serve` under load loses no acknowledged write.
//!
//! 64 clients, each on its own keep-alive connection, append events to one session as
//! fast as the server answers. SIGTERM arrives in the middle of that load. The server must
//! then exit successfully within a bounded time, and the store, reopened by the CLI
//! (`export`), must hold every event the server acknowledged with a 2xx, under the id and
//! with the content and seq it answered, none applied twice; it must also pass `verify`.
//! Writes cut off by the shutdown (connection refused or reset, 503) were not
//! acknowledged and may or may not be stored.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentstore::Record;
use serde_json::{Value, json};

use common::{json, ok};

/// Concurrent clients, one connection each.
const CLIENTS: usize = 64;
/// Load before SIGTERM, at least...
const LOAD: Duration = Duration::from_millis(1500);
/// ...and until this many writes were acknowledged...
const MIN_ACKED: usize = 300;
/// ...but no longer than this (a server that slow fails the test).
const LOAD_LIMIT: Duration = Duration::from_secs(15);
/// The server must have exited this long after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(30);
/// No single request may take longer (it would be a hang, not load).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A write the server acknowledged with a 2xx.
struct Ack {
    content: String,
    /// The answered event's id and seq (None when the answer's body was cut off after
    /// its status line: still acknowledged, so its content must be stored).
    event: Option<(String, i64)>,
    /// Acknowledged after SIGTERM was sent: a request the shutdown let finish.
    after_term: bool,
}

/// What one client saw.
#[derive(Default)]
struct Client {
    acks: Vec<Ack>,
    /// 503 answers before SIGTERM (busy), retried.
    busy: usize,
    /// How the client's loop ended.
    end: String,
}

/// State the clients share with the test.
#[derive(Default)]
struct Shared {
    /// Set just before SIGTERM is sent: from then on refusals are expected.
    term_sent: AtomicBool,
    /// Set when the test gives up: clients stop.
    give_up: AtomicBool,
    acked: AtomicUsize,
    /// Unexpected answers: any of them fails the test.
    failures: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, msg: String) {
        self.failures.lock().unwrap().push(msg);
    }
}

/// The server process; dropping it kills it, so that a failing assertion does not leave
/// a server behind.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One client: appends `w{n}-{i}` for i = 0, 1, ... until the shutdown refuses it.
fn client(n: usize, url: String, secret: String, shared: Arc<Shared>) -> Client {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into();
    let mut me = Client::default();
    for i in 0.. {
        if shared.give_up.load(Ordering::SeqCst) {
            me.end = "gave up".into();
            break;
        }
        let content = format!("w{n}-{i}");
        let body = json!({"kind": "message", "role": "user", "content": content}).to_string();
        let answer = agent
            .post(&url)
            .header("authorization", format!("Bearer {secret}"))
            .header("content-type", "application/json")
            .send(body);
        // Read after the answer: a failure seen once SIGTERM was sent may be its doing.
        let after_term = shared.term_sent.load(Ordering::SeqCst);
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(e) if after_term => {
                me.end = format!("{e}");
                break;
            }
            Err(e) => {
                shared.fail(format!("client {n}: {content} failed before SIGTERM: {e}"));
                me.end = "failed".into();
                break;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string();
        match status {
            200..=299 => {
                let event = match &text {
                    Ok(text) => {
                        let v: Value = serde_json::from_str(text).unwrap_or_default();
                        let (Some(id), Some(seq)) = (v["id"].as_str(), v["seq"].as_i64()) else {
                            shared.fail(format!(
                                "client {n}: {content}: {status} without an event: {text}"
                            ));
                            me.end = "failed".into();
                            break;
                        };
                        if v["content"] != content.as_str() {
                            shared.fail(format!(
                                "client {n}: {content} answered with another event: {text}"
                            ));
                        }
                        Some((id.to_owned(), seq))
                    }
                    Err(_) => None,
                };
                let cut_off = text.is_err();
                if cut_off && !after_term {
                    // The connection broke after the status line with the server up.
                    shared.fail(format!(
                        "client {n}: {content}: {status} with an unreadable body before SIGTERM: {text:?}"
                    ));
                }
                me.acks.push(Ack {
                    content,
                    event,
                    after_term,
                });
                shared.acked.fetch_add(1, Ordering::SeqCst);
                if cut_off {
                    me.end = format!("{status} cut off");
                    break;
                }
            }
            503 if after_term => {
                me.end = "503".into();
                break;
            }
            503 => me.busy += 1,
            _ => {
                shared.fail(format!(
                    "client {n}: {content}: unexpected {status} (after SIGTERM: {after_term}): {text:?}"
                ));
                me.end = "failed".into();
                break;
            }
        }
    }
    me
}

/// Every event of `session` in the store at `data`, read by `agentstore export`.
fn stored_events(data: &Path, session: &str) -> Vec<agentstore::Event> {
    let file = data.with_extension("export.jsonl");
    ok(data, &["export", "--out", file.to_str().unwrap()]);
    std::fs::read_to_string(&file)
        .expect("the export")
        .lines()
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(Record::Event(e)) if e.session_id == session => Some(e),
            Ok(_) => None,
            Err(e) => panic!("export line is not a record ({e}): {line}"),
        })
        .collect()
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    ok(&data, &["init"]);
    let created = json(&data, &["keys", "create", "--scopes", "read,write"]);
    let secret = created["secret"].as_str().expect("a secret").to_owned();

    let log = dir.path().join("serve.log");
    let (child, base) = common::serve(&data, &["--preset", "test", "--addr", "127.0.0.1:0"], &log);
    let mut server = Running(Some(child));
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into();
    let mut r = agent
        .post(format!("{base}/v1/sessions"))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .send(r#"{"kind": "run"}"#)
        .expect("create a session");
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status(), 201, "{text}");
    let session: Value = serde_json::from_str(&text).unwrap();
    let sid = session["id"].as_str().expect("a session id").to_owned();
    drop(agent);

    // Load.
    let shared = Arc::new(Shared::default());
    let url = format!("{base}/v1/sessions/{sid}/events");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (url, secret, shared) = (url.clone(), secret.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("client-{n}"))
                .spawn(move || client(n, url, secret, shared))
                .unwrap()
        })
        .collect();
    let load_start = Instant::now();
    loop {
        let failed = !shared.failures.lock().unwrap().is_empty();
        let acked = shared.acked.load(Ordering::SeqCst);
        let elapsed = load_start.elapsed();
        if failed || elapsed > LOAD_LIMIT {
            shared.give_up.store(true, Ordering::SeqCst);
            drop(server);
            let failures = shared.failures.lock().unwrap().join("\n");
            panic!(
                "under load before SIGTERM ({acked} acknowledged in {elapsed:?}):\n{failures}\nserver log:\n{}",
                server_log()
            );
        }
        if elapsed >= LOAD && acked >= MIN_ACKED {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let load_time = load_start.elapsed();
    let acked_before_term = shared.acked.load(Ordering::SeqCst);

    // SIGTERM in the middle of the load; the clients keep writing.
    shared.term_sent.store(true, Ordering::SeqCst);
    let term_at = Instant::now();
    common::sigterm(server.0.as_ref().unwrap());
    let status = loop {
        if let Some(status) = server.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        if term_at.elapsed() > EXIT_LIMIT {
            shared.give_up.store(true, Ordering::SeqCst);
            drop(server);
            panic!(
                "serve did not exit within {EXIT_LIMIT:?} of SIGTERM\nserver log:\n{}",
                server_log()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let exit_time = term_at.elapsed();
    server.0 = None;
    assert!(
        status.success(),
        "serve exited with {status} after SIGTERM\nserver log:\n{}",
        server_log()
    );

    // The server is gone: every client's next request is refused.
    let clients: Vec<Client> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let failures = shared.failures.lock().unwrap().join("\n");
    assert!(
        failures.is_empty(),
        "{failures}\nserver log:\n{}",
        server_log()
    );
    let acks: Vec<&Ack> = clients.iter().flat_map(|c| &c.acks).collect();
    let busy: usize = clients.iter().map(|c| c.busy).sum();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for c in &clients {
        *ends.entry(c.end.clone()).or_default() += 1;
    }

    // Reopened by the CLI: every acknowledged write is there, as answered.
    let stored = stored_events(&data, &sid);
    let by_id: BTreeMap<&str, &agentstore::Event> =
        stored.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut contents: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &stored {
        *contents
            .entry(e.content.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let mut missing = Vec::new();
    for a in &acks {
        let found = match &a.event {
            Some((id, seq)) => by_id
                .get(id.as_str())
                .is_some_and(|e| e.content.as_deref() == Some(a.content.as_str()) && e.seq == *seq),
            None => contents.contains_key(a.content.as_str()),
        };
        if !found {
            missing.push(format!(
                "{} {:?} (acknowledged after SIGTERM: {})",
                a.content, a.event, a.after_term
            ));
        }
    }
    let twice: Vec<&&str> = contents
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .collect();
    let seqs: BTreeSet<i64> = stored.iter().map(|e| e.seq).collect();
    let acked_after_term = acks.iter().filter(|a| a.after_term).count();
    let summary = format!(
        "{CLIENTS} clients, {load_time:?} of load; acknowledged {} ({acked_before_term} before \
         SIGTERM, {acked_after_term} after it), 503 busy before SIGTERM {busy}; stored {} \
         (seqs {}..={}, {} distinct); serve exited {exit_time:?} after SIGTERM; clients \
         ended by {ends:?}",
        acks.len(),
        stored.len(),
        seqs.first().copied().unwrap_or_default(),
        seqs.last().copied().unwrap_or_default(),
        seqs.len(),
    );
    eprintln!("{summary}");
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing from the store: {}\n{summary}\nserver log:\n{}",
        missing.len(),
        missing.join(", "),
        server_log()
    );
    assert!(twice.is_empty(), "stored twice: {twice:?}\n{summary}");
    assert_eq!(seqs.len(), stored.len(), "seqs repeat\n{summary}");
    assert!(stored.len() >= acks.len(), "{summary}");

    // A graceful stop leaves a sound store.
    ok(&data, &["verify"]);
}
