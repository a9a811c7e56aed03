//! Several servers over one store sharing one real `redis-server`: one rate-limit bucket
//! per key across them, revocations that reach every server's key cache, and no failed
//! request while Redis is killed and restarted under load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentstore::{KeyScope, Store};
use agentstore_server::ServerOptions;
use agentstore_testkit::services::Redis;
use common::{TestServer, code};
use serde_json::json;

/// A server over `store`, on a port of its own.
fn server(store: &Arc<Store>, opts: &ServerOptions) -> TestServer {
    common::serve(store.clone(), tempfile::tempdir().unwrap(), opts.clone())
}

fn sqlite_store() -> (Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        agentstore_sqlite::open(&agentstore_sqlite::OpenOptions::new(dir.path()).create()).unwrap();
    (Arc::new(store), dir)
}

fn with_redis(redis: &Redis, rate_per_second: f64, rate_burst: u32) -> ServerOptions {
    ServerOptions {
        rate_per_second,
        rate_burst,
        redis_url: Some(redis.url()),
        ..ServerOptions::default()
    }
}

/// The value of a metric without labels (`agentstore_` and, for counters, `_total`
/// included in `name`).
fn metric(srv: &TestServer, name: &str) -> f64 {
    let (status, body, _) = srv.raw("GET", "/metrics", None, None);
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `name` is `want` on every server.
fn wait_metric(servers: &[&TestServer], name: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    for srv in servers {
        loop {
            let got = metric(srv, name);
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {got} on {}, not {want}",
                srv.base
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn fallbacks(servers: &[&TestServer]) -> f64 {
    servers
        .iter()
        .map(|s| metric(s, "agentstore_redis_fallbacks_total"))
        .sum()
}

/// A fresh key's requests alternate between `a` and `b`; returns (allowed, refused).
/// None if a server answered from its own bucket meanwhile (Redis was slow to answer
/// on a busy machine): the count then proves nothing and the caller tries again.
fn alternate(
    a: &TestServer,
    b: &TestServer,
    tenant: &str,
    requests: usize,
) -> Option<(usize, usize)> {
    let key = a.key(tenant, &[KeyScope::Read]);
    let before = fallbacks(&[a, b]);
    let (mut allowed, mut refused) = (0, 0);
    for i in 0..requests {
        let srv = if i.is_multiple_of(2) { a } else { b };
        let (status, body, headers) = srv.raw("GET", "/v1/sessions", Some(&key), None);
        match status {
            200 => allowed += 1,
            429 => {
                assert_eq!(code(&body), "rate_limited", "{body}");
                assert!(headers.retry_after.is_some());
                refused += 1;
            }
            _ => panic!("{status} {body}"),
        }
    }
    (fallbacks(&[a, b]) == before).then_some((allowed, refused))
}

/// The bucket of a key is Redis's, not each server's: burst 5 across two servers means
/// five requests in all, not five on each.
#[test]
fn two_servers_share_one_bucket_per_key() {
    let redis = Redis::start();
    let (store, _dir) = sqlite_store();
    // One token per 100 s: nothing refills during the test.
    let opts = with_redis(&redis, 0.01, 5);
    let (a, b) = (server(&store, &opts), server(&store, &opts));
    wait_metric(
        &[&a, &b],
        "agentstore_redis_up",
        1.0,
        Duration::from_secs(5),
    );
    let counted = (0..3)
        .find_map(|_| alternate(&a, &b, "t", 10))
        .expect("Redis never answered every request of a round");
    assert_eq!(counted, (5, 5));
}

/// A key revoked through server A stops working through A on the next request and
/// through B as soon as the pub/sub message arrives, although B holds it in its cache
/// for longer than the one-second bound of a server without Redis.
#[test]
fn revocation_through_one_server_reaches_the_others_cache() {
    let redis = Redis::start();
    let (store, _dir) = sqlite_store();
    let opts = with_redis(&redis, 0.0, 1);
    let (a, b) = (server(&store, &opts), server(&store, &opts));
    wait_metric(
        &[&a, &b],
        "agentstore_redis_up",
        1.0,
        Duration::from_secs(5),
    );
    // The subscription opens just after the breaker closes; keys cached before it get
    // the short life, which would make this test prove nothing.
    std::thread::sleep(Duration::from_millis(300));
    let admin = a.admin("t");
    let victim = a.key("t", &[KeyScope::Read]);
    let victim_id = store
        .authenticate(&victim)
        .unwrap()
        .expect("the key is live")
        .id;
    for srv in [&a, &b] {
        srv.ok("GET", "/v1/sessions", &victim, None, 200);
    }
    // Past the one-second bound, B still answers from its cache: only the revocation
    // message can make it forget the key now.
    std::thread::sleep(Duration::from_millis(1200));
    let hits = metric(&b, "agentstore_api_key_cache_hits_total");
    b.ok("GET", "/v1/sessions", &victim, None, 200);
    assert_eq!(
        metric(&b, "agentstore_api_key_cache_hits_total"),
        hits + 1.0
    );

    a.ok(
        "DELETE",
        &format!("/v1/keys/{victim_id}"),
        &admin,
        None,
        204,
    );
    let (s, v) = a.call("GET", "/v1/sessions", &victim, None);
    assert_eq!((s, code(&v)), (401, "unauthorized"), "through A at once");
    let revoked = Instant::now();
    loop {
        let (s, v) = b.call("GET", "/v1/sessions", &victim, None);
        if s == 401 {
            assert_eq!(code(&v), "unauthorized");
            break;
        }
        assert_eq!(s, 200, "{v}");
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "B still takes the revoked key"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("revocation reached B after {:?}", revoked.elapsed());
    // Other keys are untouched.
    b.ok("GET", "/v1/sessions", &admin, None, 200);
}

/// Redis down when the server starts: it starts and serves from its own state, then uses
/// Redis once it answers.
#[test]
fn starts_and_serves_while_redis_is_down() {
    let mut redis = Redis::start();
    redis.kill();
    let (store, _dir) = sqlite_store();
    let srv = server(&store, &with_redis(&redis, 1000.0, 2000));
    let key = srv.admin("t");
    for _ in 0..20 {
        srv.ok("GET", "/v1/sessions", &key, None, 200);
    }
    assert_eq!(metric(&srv, "agentstore_redis_up"), 0.0);
    assert!(metric(&srv, "agentstore_redis_fallbacks_total") >= 20.0);
    redis.restart();
    wait_metric(&[&srv], "agentstore_redis_up", 1.0, Duration::from_secs(5));
    let fell_back = metric(&srv, "agentstore_redis_fallbacks_total");
    srv.ok("GET", "/v1/sessions", &key, None, 200);
    assert_eq!(
        metric(&srv, "agentstore_redis_fallbacks_total"),
        fell_back,
        "the bucket is Redis's again"
    );
}

/// 16 clients read and write through a server for 6 s while its Redis is killed at
/// 1.5 s and restarted at 3.5 s: every request succeeds, `redis_up` goes to 0 and back,
/// and afterwards the group's bucket is enforced through Redis again (two idle servers
/// that lived through the outage too).
#[test]
fn no_request_fails_while_redis_dies_and_returns() {
    const CLIENTS: usize = 16;
    const RUN: Duration = Duration::from_secs(6);
    const KILL_AT: Duration = Duration::from_millis(1500);
    const RESTART_AT: Duration = Duration::from_millis(3500);

    let mut redis = Redis::start();
    let (store, _dir) = sqlite_store();
    // Limited (so every request charges the bucket in Redis) but never reached.
    let load = server(&store, &with_redis(&redis, 1e6, 1_000_000));
    let tiny = with_redis(&redis, 0.01, 3);
    let (c, d) = (server(&store, &tiny), server(&store, &tiny));
    wait_metric(
        &[&load, &c, &d],
        "agentstore_redis_up",
        1.0,
        Duration::from_secs(5),
    );
    let keys: Vec<String> = (0..CLIENTS)
        .map(|_| load.key("load", &[KeyScope::Write]))
        .collect();

    let done = AtomicUsize::new(0);
    let failures = parking_lot::Mutex::new(Vec::<String>::new());
    let mut samples = Vec::<(Duration, f64)>::new();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, key) in keys.iter().enumerate() {
            let (load, done, failures) = (&load, &done, &failures);
            s.spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    let path = format!("/v1/kv/client-{i}");
                    let (method, body) = if n.is_multiple_of(4) {
                        ("PUT", Some(json!({"value": n}).to_string()))
                    } else {
                        ("GET", None)
                    };
                    match load.try_raw(method, &path, Some(key), body) {
                        Ok((status, _, _)) if (200..300).contains(&status) => {}
                        Ok((status, body, _)) => failures.lock().push(format!(
                            "{:?} {method} {path}: {status} {body}",
                            start.elapsed()
                        )),
                        Err(e) => failures
                            .lock()
                            .push(format!("{:?} {method} {path}: {e}", start.elapsed())),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            });
        }
        let (mut killed, mut restarted) = (false, false);
        while start.elapsed() < RUN {
            if !killed && start.elapsed() >= KILL_AT {
                redis.kill();
                killed = true;
            }
            if !restarted && start.elapsed() >= RESTART_AT {
                redis.restart();
                restarted = true;
            }
            samples.push((start.elapsed(), metric(&load, "agentstore_redis_up")));
            std::thread::sleep(Duration::from_millis(50));
        }
    });

    let failures = failures.into_inner();
    let requests = done.load(Ordering::Relaxed);
    let changes: Vec<String> = samples
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| format!("{} at {:?}", w[1].1, w[1].0))
        .collect();
    eprintln!(
        "{requests} requests in {:?}, {} failed; redis_up became {changes:?}",
        start.elapsed(),
        failures.len(),
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(requests > 500, "only {requests} requests");
    let down_at = samples
        .iter()
        .find(|(t, v)| *t > KILL_AT && *v == 0.0)
        .map(|(t, _)| *t)
        .expect("redis_up never went to 0");
    assert!(
        down_at < RESTART_AT,
        "redis_up went to 0 only at {down_at:?}"
    );
    let up_at = samples
        .iter()
        .find(|(t, v)| *t > RESTART_AT && *v == 1.0)
        .map(|(t, _)| *t)
        .expect("redis_up did not come back to 1 by the end");
    eprintln!("redis_up 0 seen at {down_at:?}, 1 again at {up_at:?}");
    let fell_back = metric(&load, "agentstore_redis_fallbacks_total");
    let errors = metric(&load, "agentstore_redis_errors_total");
    eprintln!("redis_fallbacks_total {fell_back}, redis_errors_total {errors}");
    assert!(fell_back > 0.0);
    assert!(errors > 0.0);

    // The idle servers noticed the outage through their probes, and came back too.
    wait_metric(
        &[&c, &d],
        "agentstore_redis_up",
        1.0,
        Duration::from_secs(5),
    );
    let counted = (0..3)
        .find_map(|_| alternate(&c, &d, "tiny", 8))
        .expect("Redis never answered every request of a round");
    assert_eq!(counted, (3, 5), "the group's bucket, through Redis");
}

/// all-MiniLM-L6-v2 from `$AGENTSTORE_MODEL_DIR` or `.models/` (scripts/fetch-model.sh),
/// behind an embedding cache whose handle the test keeps.
fn cached_minilm() -> Arc<agentstore_embed::Cached<agentstore_embed::BertEmbedder>> {
    let dir = std::env::var_os("AGENTSTORE_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 not found in {}: run scripts/fetch-model.sh first",
        dir.display()
    );
    let model = agentstore_embed::BertEmbedder::load(&dir).unwrap();
    Arc::new(agentstore_embed::Cached::new(model, 1000))
}

/// An erasure through one server empties the embedding cache of every other server of
/// the group: no vector of the erased subject's text stays in any server's memory.
#[test]
fn an_erasure_through_one_server_empties_every_servers_embedding_cache() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let open = |cache: &Arc<agentstore_embed::Cached<agentstore_embed::BertEmbedder>>| {
        let store = agentstore_sqlite::open(
            &agentstore_sqlite::OpenOptions::new(dir.path().join("data")).create(),
        )
        .unwrap();
        Arc::new(store.with_embedder(cache.clone()))
    };
    let (cache_a, cache_b) = (cached_minilm(), cached_minilm());
    let (store_a, store_b) = (open(&cache_a), open(&cache_b));
    let opts = with_redis(&redis, 0.0, 1);
    let (a, b) = (server(&store_a, &opts), server(&store_b, &opts));
    wait_metric(
        &[&a, &b],
        "agentstore_redis_up",
        1.0,
        Duration::from_secs(10),
    );

    let key = a.key("t1", &[KeyScope::Read, KeyScope::Write, KeyScope::Admin]);
    let (status, subject, _) = a.raw(
        "POST",
        "/v1/subjects",
        Some(&key),
        Some(json!({"external_id": "alice@example.com", "consent": true}).to_string()),
    );
    assert_eq!(status, 201, "{subject}");
    let subject_id = subject["id"].as_str().unwrap().to_owned();
    // Server B embeds the subject's memory (its text's vector enters B's cache).
    let (status, body, _) = b.raw(
        "POST",
        "/v1/memories",
        Some(&key),
        Some(
            json!({"content": "Alice is allergic to peanuts.", "subject_id": subject_id})
                .to_string(),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache_b.stats().entries, 1);

    // The erasure goes through A; B's cache empties without B being asked anything.
    let (status, body, _) = a.raw(
        "DELETE",
        &format!("/v1/subjects/{subject_id}"),
        Some(&key),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache_b.stats().entries > 0 {
        assert!(
            Instant::now() < deadline,
            "server B still caches the erased text's vector"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
