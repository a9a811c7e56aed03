//! 002, Autom8 (SQLite + sqlite-vec): `examples/reference/002-autom8/example.py` against
//! a real server with the real local embedding model (all-MiniLM-L6-v2, as Autom8 used),
//! then Autom8's environment presets: what `--preset dev`, `test`, `prod` and a config
//! file change where a client can see it (rate limit, address, log format).

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, json};
use crate::harness::{Server, Store, model_dir, run_example};

const DIR: &str = "002-autom8";

#[test]
fn autom8_example_runs_with_the_local_embedding_model() {
    let store = Store::init("read,write,admin", &[]);
    let model = model_dir();
    let server = Server::start(&store, &["--model-dir", model.to_str().unwrap()], &[], &[]);
    let s = run_example(DIR, &server, &store, &[]);
    assert_eq!(s["contexts"], 5, "{s}");
    assert_eq!(
        s["priority_order"],
        json!([
            "welcome",
            "model-routing",
            "deploy-freeze",
            "prompt-budget",
            "db-optimization",
            "release-notes"
        ]),
        "{s}"
    );
    assert_eq!(s["dedupe"], "deduplicated", "{s}");
    assert_eq!(s["decisions"], 4, "{s}");
    assert_eq!(s["usage_calls"], 6, "{s}");
    assert_eq!(s["best_model"], "anthropic/claude-3-5-haiku", "{s}");
    assert_eq!(s["semantic_top"], "prompt-budget", "{s}");
    assert_eq!(s["hybrid_top"], "db-optimization", "{s}");
    assert!(s["package_tokens"].as_i64().unwrap() <= 80, "{s}");

    // Independently, through the CLI: every memory version and chunk has its vector (the
    // store holds nothing but this example's records), and the store verifies, the
    // vector index included.
    let stats = json(&store.data, &["stats"]);
    let rows = |entity: &str| {
        stats["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entity"] == entity)
            .and_then(|e| e["rows"].as_i64())
            .unwrap_or_else(|| panic!("no {entity} in {stats}"))
    };
    assert_eq!(rows("memories"), 7, "{stats}");
    assert_eq!(
        rows("vectors"),
        rows("memories") + rows("chunks"),
        "{stats}"
    );
    let report = json(&store.data, &["verify"]);
    assert_eq!(report["ok"], true, "{report}");
    // And the example runs again on the same store (its own namespace per run).
    let again = run_example(DIR, &server, &store, &[]);
    assert_ne!(again["namespace"], s["namespace"]);
    assert_eq!(again["semantic_top"], "prompt-budget");
    server.stop();
}

/// A server started with the caller's flags, killed when dropped.
struct Running {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Running {
    fn start(store: &Store, name: &str, global: &[&str], serve: &[&str]) -> Running {
        let log = store.dir.path().join(format!("{name}.log"));
        let mut cmd = common::cli(&store.data);
        cmd.args(global).arg("serve").args(serve);
        let (child, base) = common::spawn_server(cmd, &log);
        Running { child, base, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One request: (status, Retry-After, body).
fn call(
    a: &ureq::Agent,
    base: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {secret}");
    let resp = match body {
        None => a.get(&url).header("authorization", &auth).call(),
        Some(b) => {
            assert_eq!(method, "POST");
            a.post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(b.to_string())
        }
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Sends GETs until the first refusal or `max`; returns (answered 200, the refusal).
fn burst(
    a: &ureq::Agent,
    base: &str,
    secret: &str,
    max: usize,
) -> (usize, Option<(u16, Option<String>, Value)>) {
    for i in 0..max {
        let r = call(a, base, secret, "GET", "/v1/memories?limit=1", None);
        if r.0 != 200 {
            return (i, Some(r));
        }
    }
    (max, None)
}

/// `threads` clients send GETs at once until one is refused (or each sent `max`);
/// returns (answered 200 in all, the first refusal).
fn flood(
    base: &str,
    secret: &str,
    threads: usize,
    max: usize,
) -> (usize, Option<(u16, Option<String>, Value)>) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let ok = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let refusal = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let a = agent();
                for _ in 0..max {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let r = call(&a, base, secret, "GET", "/v1/memories?limit=1", None);
                    if r.0 == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        stop.store(true, Ordering::SeqCst);
                        refusal.lock().unwrap().get_or_insert(r);
                        return;
                    }
                }
            });
        }
    });
    (ok.into_inner(), refusal.into_inner().unwrap())
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn autom8_presets_differ_where_a_client_can_see_it() {
    let store = Store::init("read,write,admin", &[]);
    let a = agent();

    // test: a free port, no rate limit, quiet logs (warnings only: no request lines).
    let t = Server::start(&store, &[], &[], &[]);
    let test_port = port(&t.base);
    assert_ne!(test_port, 8080);
    let (ok, refused) = burst(&a, &t.base, &store.secret, 300);
    assert_eq!((ok, refused.is_none()), (300, true), "{refused:?}");
    assert!(
        !t.log().contains("/v1/memories"),
        "the test preset logs no requests:\n{}",
        t.log()
    );
    t.stop();

    // dev: no rate limit either; readable text logs, one line per request.
    let dev = Running::start(
        &store,
        "dev",
        &[],
        &["--preset", "dev", "--addr", "127.0.0.1:0"],
    );
    let (ok, refused) = burst(&a, &dev.base, &store.secret, 300);
    assert_eq!((ok, refused.is_none()), (300, true), "{refused:?}");
    let log = dev.log();
    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains("/v1/memories")).collect();
    assert!(!request_lines.is_empty(), "dev logs each request:\n{log}");
    assert!(
        request_lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "dev logs text:\n{log}"
    );
    drop(dev);

    // prod: 100 requests/s per key with a burst of 200, then 429 `rate_limited` with
    // Retry-After; JSON logs.
    let prod = Running::start(
        &store,
        "prod",
        &[],
        &["--preset", "prod", "--addr", "127.0.0.1:0"],
    );
    // Eight clients at once, so that the burst runs out even on a slow, busy machine.
    let started = Instant::now();
    let (ok, refused) = flood(&prod.base, &store.secret, 8, 1000);
    let (status, retry, body) = refused.expect("prod refuses after its burst");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(retry.is_some(), "a 429 says when to retry");
    let refill = (started.elapsed().as_secs_f64() * 100.0).ceil() as usize;
    assert!(
        ok >= 200 && ok <= 200 + refill + 8,
        "{ok} answered, burst 200 + {refill} refilled"
    );
    let log = prod.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "prod logs requests");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.is_object(), "{l}");
    }
    drop(prod);

    // A config file (Autom8's database.yaml, as agentstore's TOML): the prod preset with
    // a tight limit, the local model, JSON logs.
    let model = model_dir();
    let config = store.dir.path().join("autom8.toml");
    std::fs::write(
        &config,
        format!(
            "preset = \"prod\"\n\
             [server]\naddr = \"127.0.0.1:0\"\nrate_per_second = 1.0\nrate_burst = 5\n\
             [store]\nmodel_dir = {:?}\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            model.to_str().unwrap()
        ),
    )
    .unwrap();
    let conf = Running::start(
        &store,
        "config",
        &[],
        &["--config", config.to_str().unwrap()],
    );
    let first_request = Instant::now();
    let (st, _, out) = call(
        &a,
        &conf.base,
        &store.secret,
        "POST",
        "/v1/memories",
        Some(json!({"namespace": ["autom8-config"], "kind": "context",
                    "content": "Keep prompts small and drop old turns past the token budget."})),
    );
    assert_eq!(st, 200, "{out}");
    let (st, _, hits) = call(
        &a,
        &conf.base,
        &store.secret,
        "POST",
        "/v1/search",
        Some(
            json!({"text": "shorten what the LLM is sent", "mode": "vector",
                    "filter": {"namespace_prefix": ["autom8-config"]}}),
        ),
    );
    assert_eq!(st, 200, "{hits}");
    assert_eq!(
        hits["hits"][0]["id"], out["id"],
        "the config file's model embeds: {hits}"
    );
    let (ok, refused) = burst(&a, &conf.base, &store.secret, 20);
    let (status, retry, body) = refused.expect("the file's burst of 5 runs out");
    // Two of the burst's five went to the requests above; one token a second refills.
    let refilled = first_request.elapsed().as_secs() as usize + 1;
    assert!(ok <= 3 + refilled, "{ok} answered after the first two");
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let wait: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    std::thread::sleep(Duration::from_secs(wait));
    let (st, _, _) = call(
        &a,
        &conf.base,
        &store.secret,
        "GET",
        "/v1/memories?limit=1",
        None,
    );
    assert_eq!(st, 200, "a token refilled after Retry-After");
    assert!(
        conf.log()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{}",
        conf.log()
    );
}
