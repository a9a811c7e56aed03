//! Several servers on one PostgreSQL and one Redis, and moving a store between the
//! backends, with the real binary against a real PostgreSQL (pgvector) and a real
//! redis-server (throwaway, on loopback ports; see agentstore_testkit::services).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use agentstore::search::{SearchMode, Target};
use agentstore::{NewEvent, NewMemory, NewSession, Scope, SearchRequest, Store};
use agentstore_testkit::services::{Postgres, Redis};
use serde_json::{Value, json};

use common::{bare, describe, spawn_server};

/// `agentstore --database-url URL --tenant acme ARGS`.
fn pg_cli(url: &str, args: &[&str]) -> Command {
    let mut c = bare();
    c.args(["--database-url", url, "--tenant", "acme"])
        .args(args);
    c
}

fn pg_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = pg_cli(url, &all).output().expect("the binary runs");
    assert!(o.status.success(), "{}", describe(&format!("{all:?}"), &o));
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

/// A running server, killed when dropped.
struct Running(Child, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One request; (status, body).
fn call(base: &str, secret: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {secret}");
    let a = agent();
    let resp = match (method, body) {
        ("GET", _) => a.get(&url).header("authorization", &auth).call(),
        (_, Some(b)) => a
            .post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(b.to_string()),
        (_, None) => a.post(&url).header("authorization", &auth).send_empty(),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn two_servers_share_one_postgres_and_one_redis() {
    let url = Postgres::shared().create_database();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();

    // Two processes initialise the new database at once: the migrations run once (the
    // other waits on the migration lock and finds nothing left to do), both succeed.
    let inits: Vec<Child> = (0..2)
        .map(|_| pg_cli(&url, &["init"]).spawn().expect("the binary runs"))
        .collect();
    for mut c in inits {
        let status = c.wait().unwrap();
        assert!(status.success(), "a concurrent init failed: {status}");
    }
    let st = pg_json(&url, &["migrate", "status"]);
    assert_eq!(st["current"], st["latest"], "{st}");
    let states: Vec<&str> = st["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "applied"), "{st}");

    let secret = pg_json(&url, &["keys", "create", "--scopes", "read,write"])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = |n: usize| {
        let mut cmd = pg_cli(&url, &["serve", "--preset", "test"]);
        cmd.env("AGENTSTORE_REDIS_URL", redis.url());
        let (child, base) = spawn_server(cmd, &tmp.path().join(format!("server{n}.log")));
        Running(child, base)
    };
    let (a, b) = (start(1), start(2));

    // A write through one server is read through the other.
    let (s, v) = call(
        &a.1,
        &secret,
        "POST",
        "/v1/memories",
        Some(json!({"content": "The user prefers short answers.", "key": "style"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, got) = call(&b.1, &secret, "GET", "/v1/memories/by-key?key=style", None);
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["content"], "The user prefers short answers.");
    let (s, v) = call(
        &b.1,
        &secret,
        "POST",
        "/v1/memories",
        Some(json!({"content": "The user prefers long answers.", "key": "style"})),
    );
    assert_eq!(s, 200, "{v}");
    let (_, got) = call(&a.1, &secret, "GET", "/v1/memories/by-key?key=style", None);
    assert_eq!(got["content"], "The user prefers long answers.");

    // A lock taken through A holds against B; its fencing token is checked through B.
    let acquire = |srv: &Running, holder: &str| {
        call(
            &srv.1,
            &secret,
            "POST",
            "/v1/locks/nightly-job/acquire",
            Some(json!({"holder": holder, "ttl_ms": 60_000})),
        )
    };
    let (s, lock) = acquire(&a, "worker-a");
    assert_eq!(s, 200, "{lock}");
    let t1 = lock["token"].as_i64().unwrap();
    let (s, v) = acquire(&b, "worker-b");
    assert_eq!((s, v["code"].as_str()), (409, Some("lock_held")), "{v}");
    let release = |srv: &Running, token: i64| {
        call(
            &srv.1,
            &secret,
            "POST",
            "/v1/locks/nightly-job/release",
            Some(json!({"token": token})),
        )
    };
    let (s, v) = release(&b, t1 - 1);
    assert_eq!((s, v["code"].as_str()), (409, Some("stale_token")), "{v}");
    let (s, v) = release(&b, t1);
    assert_eq!(s, 200, "{v}");
    let (s, lock) = acquire(&b, "worker-b");
    assert_eq!(s, 200, "{lock}");
    assert!(lock["token"].as_i64().unwrap() > t1, "{lock}");
    // The old holder's token no longer fences anything.
    let (s, v) = release(&a, t1);
    assert_eq!((s, v["code"].as_str()), (409, Some("stale_token")), "{v}");

    // Both servers see one audit chain, and it verifies.
    let report = pg_json(&url, &["verify"]);
    assert_eq!(report["ok"], true, "{report}");
}

/// A SQLite store with every kind of record the sample has, plus memories and events
/// with caller-supplied vectors.
fn sqlite_source(dir: &Path) -> Store {
    let store =
        agentstore_sqlite::open(&agentstore_sqlite::OpenOptions::new(dir).create()).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample/sample.jsonl");
    let scope = Scope::new("", "tester");
    let mut input = std::io::BufReader::new(std::fs::File::open(sample).unwrap());
    store.import_jsonl(&scope, &mut input, &mut |_| {}).unwrap();
    store.ensure_tenant("tester", "acme").unwrap();
    let scope = Scope::new("acme", "tester");
    for i in 0..40 {
        let mut m = NewMemory::new(format!("vector memory number {i}"));
        m.vector = Some(
            (0..8)
                .map(|d| ((i * 7 + d * 3) % 11) as f32 - 5.0)
                .collect(),
        );
        store.remember(&scope, m).unwrap();
    }
    let session = store
        .create_session(&scope, NewSession::new("conversation"))
        .unwrap();
    let mut e = NewEvent::message("user", "an event with a vector");
    e.vector = Some(vec![1.0, 0.5, -0.25, 0.0, 2.0, 1.0, -1.0, 0.125]);
    store.append_events(&scope, &session.id, vec![e]).unwrap();
    store
}

fn vector_hits(store: &Store) -> Vec<String> {
    let req = SearchRequest {
        mode: Some(SearchMode::Vector),
        vector: Some(vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.0, 2.0, 1.0]),
        targets: vec![Target::Memory, Target::Event],
        limit: 10,
        ..Default::default()
    };
    store
        .search(&Scope::new("acme", "tester"), req)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn copy_moves_a_store_to_postgres_and_back_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let source = sqlite_source(&a);
    let hits = vector_hits(&source);
    assert_eq!(hits.len(), 10);
    let url = Postgres::shared().create_database();

    let from_a = format!("sqlite:{}", a.display());
    let o = bare()
        .args(["--json", "copy", "--from", &from_a, "--to", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("copy to postgres", &o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["records"]["memory"]["count"],
        source_memories(&source),
        "{report}"
    );
    assert_eq!(report["vectors"]["external-8d"]["count"], 41, "{report}");

    // The PostgreSQL copy answers searches as the original does.
    let pg = agentstore_postgres::open(&agentstore_postgres::PgOptions::new(url.clone())).unwrap();
    assert_eq!(vector_hits(&pg), hits);

    // And back into a new SQLite store: every record and vector as in the first.
    let to_b = format!("sqlite:{}", b.display());
    let o = bare()
        .args(["copy", "--from", &url, "--to", &to_b])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("copy back", &o));
    let back = agentstore_sqlite::open(&agentstore_sqlite::OpenOptions::new(&b)).unwrap();
    let check = agentstore::copy::verify(&source, &back).unwrap();
    assert_eq!(check.vectors["external-8d"].count, 41);
    assert_eq!(vector_hits(&back), hits);

    // A destination that is not empty is refused, and left as it was.
    let o = bare()
        .args(["copy", "--from", &from_a, "--to", &url])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "{}",
        describe("copy into a used store", &o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("error[invalid_input]"),
        "{}",
        describe("copy into a used store", &o)
    );
}

/// Memories of every tenant, counted from an export.
fn source_memories(store: &Store) -> u64 {
    let mut n = 0;
    store
        .backend()
        .export(&mut |r| {
            if let agentstore::Record::Memory(_) = r {
                n += 1;
            }
            Ok(())
        })
        .unwrap();
    n
}
