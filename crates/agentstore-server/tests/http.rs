//! The REST API over real HTTP on loopback: auth and scopes, tenant isolation across every
//! endpoint, errors, pagination, the OpenAPI document, rate limits, health and metrics,
//! and graceful shutdown under writes.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentstore::KeyScope;
use agentstore_server::ServerOptions;
use common::{TestServer, code, start, start_with};
use serde_json::{Value, json};

/// One record of every kind in `tenant`, created through the API; returns their ids.
struct Fixture {
    session: String,
    event: String,
    memory: String,
    document: String,
    agent: String,
    subject: String,
    checkpoint: String,
    key_id: String,
}

fn fixture(srv: &TestServer, key: &str, word: &str) -> Fixture {
    let subject = srv.ok(
        "POST",
        "/v1/subjects",
        key,
        Some(json!({"external_id": format!("{word}@example.com"), "consent": true})),
        201,
    );
    let agent = srv.ok(
        "POST",
        "/v1/agents",
        key,
        Some(json!({"name": format!("agent-{word}"), "agent_type": "worker"})),
        200,
    );
    let session = srv.ok(
        "POST",
        "/v1/sessions",
        key,
        Some(json!({"kind": "conversation", "title": word, "agent_id": agent["id"]})),
        201,
    );
    let sid = session["id"].as_str().unwrap().to_owned();
    let event = srv.ok(
        "POST",
        &format!("/v1/sessions/{sid}/events"),
        key,
        Some(json!({"kind": "message", "role": "user", "content": format!("{word} says hello")})),
        201,
    );
    let memory = srv.ok(
        "POST",
        "/v1/memories",
        key,
        Some(json!({"key": "fav", "content": format!("{word} likes tea"), "namespace": ["app"]})),
        200,
    );
    let document = srv.ok(
        "POST",
        "/v1/documents",
        key,
        Some(json!({"title": word, "content": format!("A document about {word}. It has two sentences.")})),
        200,
    );
    let checkpoint = srv.ok(
        "POST",
        "/v1/checkpoints",
        key,
        Some(json!({"session_id": sid, "state": {"format": "json", "data": {"step": 1}}})),
        201,
    );
    srv.ok(
        "PUT",
        "/v1/kv/shared-name",
        key,
        Some(json!({"value": word})),
        200,
    );
    srv.ok(
        "POST",
        "/v1/locks/shared-lock/acquire",
        key,
        Some(json!({"holder": word, "ttl_ms": 60000})),
        200,
    );
    let keys = srv.ok("GET", "/v1/keys", key, None, 200);
    Fixture {
        session: sid,
        event: event["id"].as_str().unwrap().to_owned(),
        memory: memory["id"].as_str().unwrap().to_owned(),
        document: document["id"].as_str().unwrap().to_owned(),
        agent: agent["id"].as_str().unwrap().to_owned(),
        subject: subject["id"].as_str().unwrap().to_owned(),
        checkpoint: checkpoint["id"].as_str().unwrap().to_owned(),
        key_id: keys["items"][0]["id"].as_str().unwrap().to_owned(),
    }
}

/// A valid body for an operation, so that only the id can make it fail.
fn body_for(operation: &str, b: &Fixture) -> Option<Value> {
    Some(match operation {
        "updateSession" => json!({"status": "done"}),
        "appendEvent" => json!({"kind": "message", "content": "intruder"}),
        "appendEvents" => json!({"events": [{"kind": "message", "content": "intruder"}]}),
        "setConsent" => json!({"consent": false}),
        "updateSubject" => json!({"metadata": {"note": "intruder"}, "retention_days": 1}),
        "putPendingWrites" => {
            json!({"writes": [{"task_id": "t", "idx": 0, "channel": "c", "value": {"format": "json", "data": 1}}]})
        }
        "kvSet" => json!({"value": "from the other tenant"}),
        "kvIncr" => json!({"by": 1}),
        "kvExpire" => json!({"ttl_ms": 60000}),
        "lockAcquire" => json!({"holder": "intruder", "ttl_ms": 60000}),
        "lockRenew" => json!({"token": 1, "ttl_ms": 60000}),
        "lockRelease" => json!({"token": 1}),
        _ => {
            let _ = b;
            return None;
        }
    })
}

/// Tenant A's admin key against every endpoint that takes an id, with tenant B's ids:
/// always not-found, never B's data; B's records are unchanged afterwards. Names of
/// kv entries and locks are per tenant, so A writing `shared-name` makes A's own entry.
#[test]
fn tenant_a_never_reaches_tenant_b() {
    let srv = start();
    let a = srv.admin("tenant-a");
    let b_key = srv.admin("tenant-b");
    let b = fixture(&srv, &b_key, "bravo");
    let doc = srv.ok("GET", "/v1/openapi.json", &a, None, 200);
    let b_before = snapshot(&srv, &b_key, &b);
    let mut walked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        for (method, op) in methods.as_object().unwrap() {
            let operation = op["operationId"].as_str().unwrap();
            let id = if path.starts_with("/v1/sessions/") {
                &b.session
            } else if path.starts_with("/v1/events/") {
                &b.event
            } else if path.starts_with("/v1/memories/") {
                &b.memory
            } else if path.starts_with("/v1/documents/") {
                &b.document
            } else if path.starts_with("/v1/agents/") {
                &b.agent
            } else if path.starts_with("/v1/subjects/") {
                &b.subject
            } else if path.starts_with("/v1/checkpoints/") {
                &b.checkpoint
            } else if path.starts_with("/v1/keys/") {
                &b.key_id
            } else if path.starts_with("/v1/kv/") {
                "shared-name"
            } else if path.starts_with("/v1/locks/") {
                "shared-lock"
            } else {
                panic!("no tenant-B id for {path}: extend this test");
            };
            let mut url = path
                .replace("{id}", id)
                .replace("{key}", id)
                .replace("{name}", id);
            if path.starts_with("/v1/checkpoints/") {
                url.push_str(&format!("?session_id={}", b.session));
            }
            let (status, body) =
                srv.call(&method.to_uppercase(), &url, &a, body_for(operation, &b));
            let text = body.to_string();
            assert!(!text.contains("bravo"), "{method} {url} leaked: {text}");
            let own_namespace = matches!(
                operation,
                "kvSet" | "kvIncr" | "kvExpire" | "lockAcquire" | "lockRenew" | "lockRelease"
            );
            if own_namespace {
                assert!(
                    status < 500 && status != 401 && status != 403,
                    "{method} {url}: {status} {text}"
                );
            } else {
                assert_eq!(status, 404, "{method} {url}: {text}");
                assert_eq!(code(&body), "not_found", "{method} {url}");
            }
            walked += 1;
        }
    }
    assert!(walked >= 29, "walked only {walked} endpoints");
    assert_eq!(snapshot(&srv, &b_key, &b), b_before, "tenant B changed");

    // Lists and search never show B's records either.
    for path in [
        "/v1/sessions",
        "/v1/memories",
        "/v1/documents",
        "/v1/agents",
        "/v1/kv",
        "/v1/keys",
        "/v1/audit",
    ] {
        let v = srv.ok("GET", path, &a, None, 200);
        assert!(!v.to_string().contains("bravo"), "{path}: {v}");
    }
    let hits = srv.ok(
        "POST",
        "/v1/search",
        &a,
        Some(json!({"text": "bravo"})),
        200,
    );
    assert_eq!(hits["hits"], json!([]));
    let hits = srv.ok(
        "POST",
        "/v1/search",
        &b_key,
        Some(json!({"text": "bravo"})),
        200,
    );
    assert!(!hits["hits"].as_array().unwrap().is_empty());
}

/// What tenant B can see of its own records.
fn snapshot(srv: &TestServer, key: &str, b: &Fixture) -> Vec<Value> {
    let mut out = vec![
        srv.ok(
            "GET",
            &format!("/v1/sessions/{}", b.session),
            key,
            None,
            200,
        ),
        srv.ok(
            "GET",
            &format!("/v1/sessions/{}/events", b.session),
            key,
            None,
            200,
        ),
        srv.ok("GET", &format!("/v1/memories/{}", b.memory), key, None, 200),
        srv.ok(
            "GET",
            &format!("/v1/documents/{}", b.document),
            key,
            None,
            200,
        ),
        srv.ok("GET", &format!("/v1/agents/{}", b.agent), key, None, 200),
        srv.ok(
            "GET",
            &format!("/v1/subjects/{}", b.subject),
            key,
            None,
            200,
        ),
        srv.ok("GET", "/v1/kv/shared-name", key, None, 200),
        srv.ok("GET", "/v1/locks/shared-lock", key, None, 200),
        srv.ok("GET", "/v1/keys", key, None, 200),
    ];
    out.push(srv.ok(
        "GET",
        &format!("/v1/checkpoints/{}?session_id={}", b.checkpoint, b.session),
        key,
        None,
        200,
    ));
    out
}

#[test]
fn keys_and_scopes() {
    let srv = start();
    let admin = srv.admin("t1");
    // No key, a malformed header, an unknown key.
    let (s, v, _) = srv.raw("GET", "/v1/sessions", None, None);
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    let (s, v, _) = srv.raw("GET", "/v1/sessions", Some(""), None);
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    let (s, v) = srv.call("GET", "/v1/sessions", "ask_0000", None);
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    // A read key reads but cannot write; a write key cannot administer.
    let created = srv.ok(
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"name": "reader", "scopes": ["read"]})),
        201,
    );
    let reader = created["secret"].as_str().unwrap().to_owned();
    assert!(reader.starts_with("ask_"));
    assert_eq!(created["key"]["scopes"], json!(["read"]));
    srv.ok("GET", "/v1/sessions", &reader, None, 200);
    let (s, v) = srv.call(
        "POST",
        "/v1/sessions",
        &reader,
        Some(json!({"kind": "task"})),
    );
    assert_eq!((s, code(&v)), (403, "forbidden"));
    let writer = srv.key("t1", &[KeyScope::Write]);
    srv.ok(
        "POST",
        "/v1/sessions",
        &writer,
        Some(json!({"kind": "task"})),
        201,
    );
    let (s, v) = srv.call("GET", "/v1/keys", &writer, None);
    assert_eq!((s, code(&v)), (403, "forbidden"));
    // The store never holds the secret.
    let keys = srv.ok("GET", "/v1/keys", &admin, None, 200);
    assert!(!keys.to_string().contains(&reader));
    // Revoked: refused on the next request.
    let id = created["key"]["id"].as_str().unwrap();
    let (s, _) = srv.call("DELETE", &format!("/v1/keys/{id}"), &admin, None);
    assert_eq!(s, 204);
    let (s, v) = srv.call("GET", "/v1/sessions", &reader, None);
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    // Bad scope names and past expiry are invalid input.
    let (s, v) = srv.call(
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"name": "x", "scopes": ["root"]})),
    );
    assert_eq!((s, code(&v)), (400, "invalid_json"));
    let (s, v) = srv.call(
        "POST",
        "/v1/keys",
        &admin,
        Some(json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"})),
    );
    assert_eq!((s, code(&v)), (400, "invalid_input"));
    // Key creation and revocation are audited, without the secret.
    let audit = srv.ok("GET", "/v1/audit?resource_type=api_key", &admin, None, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"api_key.create") && actions.contains(&"api_key.revoke"),
        "{actions:?}"
    );
    assert!(!audit.to_string().contains(&reader));
}

#[test]
fn errors_are_json_with_stable_codes_and_change_nothing() {
    let srv = start_with(ServerOptions {
        max_body_bytes: 64 * 1024,
        rate_per_second: 0.0,
        ..ServerOptions::default()
    });
    let k = srv.admin("t1");
    let sessions_before = srv.ok("GET", "/v1/sessions", &k, None, 200);
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/v1/sessions",
            Some("{not json".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/sessions",
            Some("{\"kind\": 5}".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/sessions",
            Some("{\"kind\": \"\"}".into()),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/sessions",
            Some(format!("{{\"kind\": \"{}\"}}", "x".repeat(100_000))),
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/memories",
            Some("{\"content\": \"\"}".into()),
            400,
            "invalid_input",
        ),
        ("GET", "/v1/sessions?limit=abc", None, 400, "invalid_input"),
        // An empty value is refused rather than read as an absent filter.
        (
            "GET",
            "/v1/sessions?started_to=",
            None,
            400,
            "invalid_input",
        ),
        ("GET", "/v1/audit?to=", None, 400, "invalid_input"),
        // serde would fill the struct from an array of its fields.
        (
            "PUT",
            "/v1/kv/k",
            Some("[null, null]".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/sessions",
            Some("\"run\"".into()),
            400,
            "invalid_json",
        ),
        (
            "GET",
            "/v1/sessions?namespace=a//b",
            None,
            400,
            "invalid_input",
        ),
        ("GET", "/v1/sessions/nope", None, 404, "not_found"),
        ("GET", "/v1/no-such-thing", None, 404, "not_found"),
        (
            "PUT",
            "/v1/sessions",
            Some("{}".into()),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/v1/search",
            Some("{\"text\": \"x\", \"mode\": \"sideways\"}".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/search",
            Some("{\"mode\": \"vector\", \"text\": \"x\"}".into()),
            400,
            "invalid_input",
        ),
    ];
    for (method, path, body, status, want) in cases {
        // A 413 may reach the client as a reset connection (see `try_raw`): retry until
        // the answer itself arrives, each time on a new connection, so that the one the
        // server closed is never reused by a later request.
        let (s, v, h) = (0..20)
            .find_map(|_| {
                srv.try_raw_unpooled(method, path, Some(&k), body.clone())
                    .ok()
            })
            .unwrap_or_else(|| panic!("{method} {path}: no answer in 20 tries"));
        assert_eq!((s, code(&v)), (status, want), "{method} {path}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
        assert!(h.request_id.is_some());
    }
    // Sent without a JSON content type.
    let (s, _) = {
        let (s, v, _) = srv.raw("POST", "/v1/sessions", Some(&k), None);
        (s, v)
    };
    assert_eq!(s, 415);
    assert_eq!(
        srv.ok("GET", "/v1/sessions", &k, None, 200),
        sessions_before
    );
}

#[test]
fn every_list_paginates_with_a_cursor() {
    let srv = start();
    let k = srv.admin("t1");
    for i in 0..25 {
        srv.ok(
            "POST",
            "/v1/sessions",
            &k,
            Some(json!({"kind": "task", "title": format!("s{i}")})),
            201,
        );
        srv.ok(
            "POST",
            "/v1/memories",
            &k,
            Some(json!({"content": format!("fact number {i}")})),
            200,
        );
        srv.ok(
            "POST",
            "/v1/documents",
            &k,
            Some(json!({"content": format!("document {i}")})),
            200,
        );
        srv.ok(
            "POST",
            "/v1/agents",
            &k,
            Some(json!({"name": format!("agent{i}")})),
            200,
        );
    }
    for list in [
        "/v1/sessions",
        "/v1/memories",
        "/v1/documents",
        "/v1/agents",
    ] {
        let mut seen = BTreeSet::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &after {
                Some(c) => format!("{list}?limit=10&after={c}"),
                None => format!("{list}?limit=10"),
            };
            let page = srv.ok("GET", &url, &k, None, 200);
            for item in page["items"].as_array().unwrap() {
                assert!(
                    seen.insert(item["id"].as_str().unwrap().to_owned()),
                    "{list}: repeat"
                );
            }
            pages += 1;
            match page["next"].as_str() {
                Some(c) => after = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!((seen.len(), pages), (25, 3), "{list}");
    }
    // Events page by seq.
    let sid = srv.ok(
        "POST",
        "/v1/sessions",
        &k,
        Some(json!({"kind": "conversation"})),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"kind": "message", "content": format!("m{i}")}))
        .collect();
    srv.ok(
        "POST",
        &format!("/v1/sessions/{sid}/events/batch"),
        &k,
        Some(json!({"events": events})),
        201,
    );
    let mut seqs = Vec::new();
    let mut after = String::new();
    loop {
        let page = srv.ok(
            "GET",
            &format!("/v1/sessions/{sid}/events?limit=10{after}"),
            &k,
            None,
            200,
        );
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(c) => after = format!("&after_seq={c}"),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=25).collect::<Vec<i64>>());
}

#[test]
fn openapi_document_describes_every_route() {
    let srv = start();
    let (s, doc, _) = srv.raw("GET", "/v1/openapi.json", None, None);
    assert_eq!(s, 200, "the document is public");
    assert_eq!(doc["openapi"], "3.1.0");
    let text = doc.to_string();
    let mut ids = BTreeSet::new();
    let mut ops = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/v1/"), "{path}");
        for (_, op) in methods.as_object().unwrap() {
            ops += 1;
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
            assert!(op["responses"]["default"].is_object());
        }
    }
    assert!(ops >= 50, "{ops} operations");
    // Every $ref resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target}"));
        assert!(schemas.contains_key(name), "unresolved {target}");
    }
    // The code table is in the description.
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("`rate_limited` | 429")
    );
    // The document served equals the one built in code.
    assert_eq!(doc, agentstore_server::Server::openapi());
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let srv = start_with(ServerOptions {
        rate_per_second: 0.5,
        rate_burst: 3,
        ..ServerOptions::default()
    });
    let k = srv.admin("t1");
    let other = srv.admin("t2");
    for _ in 0..3 {
        srv.ok("GET", "/v1/sessions", &k, None, 200);
    }
    let (s, v, h) = srv.raw("GET", "/v1/sessions", Some(&k), None);
    assert_eq!((s, code(&v)), (429, "rate_limited"));
    let secs: u64 = h.retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    // Another key has its own bucket.
    srv.ok("GET", "/v1/sessions", &other, None, 200);
}

#[test]
fn health_readiness_and_metrics() {
    let srv = start();
    let (s, v, _) = srv.raw("GET", "/healthz", None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, _, _) = srv.raw("GET", "/readyz", None, None);
    assert_eq!(s, 200);
    let k = srv.admin("t1");
    srv.ok(
        "POST",
        "/v1/memories",
        &k,
        Some(json!({"content": "metrics please"})),
        200,
    );
    let (s, v, h) = srv.raw("GET", "/metrics", None, None);
    assert_eq!(s, 200);
    assert!(
        h.content_type
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = v.as_str().unwrap();
    for needle in [
        "agentstore_http_requests_total{method=\"POST\",route=\"/v1/memories\",status=\"200\"} 1",
        "agentstore_http_request_duration_seconds_bucket",
        "agentstore_store_rows{entity=\"memories\"} 1",
        "agentstore_http_requests_in_flight",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

/// Writers append events while the server shuts down: every append the server
/// acknowledged is in the store afterwards, and writers see refusals, not corruption.
#[test]
fn graceful_shutdown_loses_no_acknowledged_write() {
    let mut srv = start();
    let k = srv.admin("t1");
    let sid = srv.ok(
        "POST",
        "/v1/sessions",
        &k,
        Some(json!({"kind": "run"})),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = srv.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, k, sid, stop) = (base.clone(), k.clone(), sid.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut acked = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let content = format!("w{w}-{i}");
                    let r = agent
                        .post(format!("{base}/v1/sessions/{sid}/events"))
                        .header("authorization", format!("Bearer {k}"))
                        .header("content-type", "application/json")
                        .send(json!({"kind": "step", "content": content}).to_string());
                    match r {
                        Ok(resp) if resp.status() == 201 => acked.push(content),
                        // Refused or cut off during shutdown: not acknowledged.
                        _ => {}
                    }
                    i += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(400));
    srv.stop();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acked.len() > 20,
        "only {} appends acknowledged",
        acked.len()
    );
    let scope = agentstore::Scope::new("t1", "test");
    let stored: BTreeSet<String> = agentstore_testkit::all_events(&srv.store, &scope, &sid)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.content)
        .collect();
    for c in &acked {
        assert!(stored.contains(c), "acknowledged {c} is missing");
    }
}

/// A child's data waits for a parent's consent (403 `consent_required`); a subject's
/// export and erasure need an admin key; after erasure its records are gone.
#[test]
fn subjects_parental_gate_export_and_erasure() {
    let srv = start();
    let writer = srv.key("t1", &[KeyScope::Read, KeyScope::Write]);
    let admin = srv.admin("t1");
    let kid = srv.ok(
        "POST",
        "/v1/subjects",
        &writer,
        Some(json!({"external_id": "kid@example.com", "age_gated": true})),
        201,
    );
    let kid = kid["id"].as_str().unwrap().to_owned();
    let session = json!({"kind": "learning", "subject_id": kid, "title": "volcanoes"});
    let (s, v) = srv.call("POST", "/v1/sessions", &writer, Some(session.clone()));
    assert_eq!((s, code(&v)), (403, "consent_required"), "{v}");
    let (s, v) = srv.call(
        "POST",
        "/v1/memories",
        &writer,
        Some(json!({"content": "likes volcanoes", "subject_id": kid})),
    );
    assert_eq!((s, code(&v)), (403, "consent_required"), "{v}");
    let page = srv.ok("GET", "/v1/sessions", &writer, None, 200);
    assert_eq!(page["items"], json!([]), "a refused write left a session");
    let consented = srv.ok(
        "PUT",
        &format!("/v1/subjects/{kid}/consent"),
        &writer,
        Some(json!({"consent": true, "parental_consent_by": "parent:alice"})),
        200,
    );
    assert_eq!(consented["parental_consent_by"], "parent:alice");
    assert!(consented["parental_consent_at"].is_string(), "{consented}");
    let created = srv.ok("POST", "/v1/sessions", &writer, Some(session), 201);
    let sid = created["id"].as_str().unwrap().to_owned();
    srv.ok(
        "POST",
        &format!("/v1/sessions/{sid}/events"),
        &writer,
        Some(json!({"kind": "message", "role": "user", "content": "lava is hot"})),
        201,
    );

    let export_path = format!("/v1/subjects/{kid}/export");
    let (s, v) = srv.call("GET", &export_path, &writer, None);
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let export = srv.ok("GET", &export_path, &admin, None, 200);
    assert_eq!(export["subject"]["id"], kid.as_str());
    assert_eq!(export["events"][0]["content"], "lava is hot");
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1);

    let (s, v) = srv.call("DELETE", &format!("/v1/subjects/{kid}"), &writer, None);
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let erased = srv.ok("DELETE", &format!("/v1/subjects/{kid}"), &admin, None, 200);
    assert_eq!(
        (erased["sessions"].as_u64(), erased["events"].as_u64()),
        (Some(1), Some(1))
    );
    for path in [
        format!("/v1/subjects/{kid}"),
        format!("/v1/sessions/{sid}"),
        export_path,
    ] {
        let (s, v) = srv.call("GET", &path, &admin, None);
        assert_eq!((s, code(&v)), (404, "not_found"), "{path}: {v}");
    }
}

/// Retention rules over the API, and the server's sweeper applying them on its own.
#[test]
fn retention_rules_and_the_sweeper() {
    let srv = start_with(ServerOptions {
        rate_per_second: 0.0,
        sweep_interval: Some(std::time::Duration::from_millis(200)),
        ..ServerOptions::default()
    });
    let admin = srv.admin("t1");
    let writer = srv.key("t1", &[KeyScope::Read, KeyScope::Write]);
    let (s, v) = srv.call(
        "PUT",
        "/v1/retention",
        &writer,
        Some(json!({"entity": "memory", "days": 1})),
    );
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let (s, v) = srv.call(
        "PUT",
        "/v1/retention",
        &admin,
        Some(json!({"entity": "memory", "days": 0})),
    );
    assert_eq!((s, code(&v)), (400, "invalid_input"), "{v}");
    let rules = srv.ok(
        "PUT",
        "/v1/retention",
        &admin,
        Some(json!({"entity": "memory", "kind": "fact", "days": 1})),
        200,
    );
    assert_eq!(rules["items"][0]["days"], 1, "{rules}");
    let listed = srv.ok("GET", "/v1/retention", &admin, None, 200);
    assert_eq!(listed, rules);

    let old = srv.ok(
        "POST",
        "/v1/memories",
        &writer,
        Some(json!({"content": "old news", "kind": "fact"})),
        200,
    );
    let old = old["id"].as_str().unwrap().to_owned();
    let kept = srv.ok(
        "POST",
        "/v1/memories",
        &writer,
        Some(json!({"content": "old taste", "kind": "preference"})),
        200,
    );
    let kept = kept["id"].as_str().unwrap().to_owned();
    // Two days old, behind the server's back.
    let db = agentstore_sqlite::DataDir::new(srv.dir.path()).db_path();
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute(
        "UPDATE memories SET updated_at = updated_at - 2 * 86400000000",
        [],
    )
    .unwrap();
    let started = std::time::Instant::now();
    loop {
        let (s, _) = srv.call("GET", &format!("/v1/memories/{old}"), &writer, None);
        if s == 404 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the sweeper did not remove the old fact"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    srv.ok("GET", &format!("/v1/memories/{kept}"), &writer, None, 200);
    let audit = srv.ok("GET", "/v1/audit?action=retention.sweep", &admin, None, 200);
    assert_eq!(audit["items"][0]["actor"], "agentstore:sweeper", "{audit}");
    let cleared = srv.ok(
        "PUT",
        "/v1/retention",
        &admin,
        Some(json!({"entity": "memory", "kind": "fact", "days": null})),
        200,
    );
    assert_eq!(cleared["items"], json!([]));
}

/// One raw HTTP/1.1 request with `host` as its Host header (clients set it from the URL,
/// so a raw socket is the way to send another); returns the status and the body.
fn with_host(base: &str, host: &str, key: &str) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let addr = base.strip_prefix("http://").unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status: u16 = answer[9..12].parse().unwrap();
    let (_, text) = answer.split_once("\r\n\r\n").unwrap();
    (
        status,
        serde_json::from_str(text).unwrap_or(Value::String(text.into())),
    )
}

/// `/mcp` answers only the Host names it is configured for (against DNS rebinding),
/// and refuses others with the API's JSON error.
#[test]
fn mcp_refuses_hosts_it_is_not_configured_for() {
    let srv = start();
    let key = srv.key("t1", &[KeyScope::Read]);
    let (s, v) = with_host(&srv.base, "evil.example", &key);
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("mcp_allowed_hosts"),
        "{v}"
    );
    let (s, v) = with_host(&srv.base, "localhost:1234", &key);
    assert_eq!(s, 200, "{v}");

    let srv = start_with(ServerOptions {
        mcp_allowed_hosts: vec!["agents.internal".into()],
        ..ServerOptions::default()
    });
    let key = srv.key("t1", &[KeyScope::Read]);
    let (s, v) = with_host(&srv.base, "agents.internal:8080", &key);
    assert_eq!(s, 200, "{v}");
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    let (s, v) = with_host(&srv.base, "localhost", &key);
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
}

/// `/mcp` over streamable HTTP, spoken as JSON-RPC: the key's tenant and scopes apply to
/// each tool call.
#[test]
fn mcp_over_http_uses_the_key_of_each_request() {
    let srv = start();
    let writer = srv.key("t1", &[KeyScope::Write]);
    let reader = srv.key("t1", &[KeyScope::Read]);
    let other = srv.key("t2", &[KeyScope::Write]);
    let rpc = |key: Option<&str>, id: u64, method: &str, params: Value| -> (u16, Value) {
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/mcp", srv.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.run(req.body(body.to_string()).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    };
    let init = json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}});
    let (s, v) = rpc(None, 1, "initialize", init.clone());
    assert_eq!((s, code(&v)), (401, "unauthorized"), "{v}");
    let (s, v) = rpc(Some(&writer), 1, "initialize", init);
    assert_eq!(s, 200, "{v}");
    assert!(v["result"]["capabilities"]["tools"].is_object(), "{v}");
    let tool = |key: &str, name: &str, args: Value| -> (bool, String) {
        let (s, v) = rpc(
            Some(key),
            2,
            "tools/call",
            json!({"name": name, "arguments": args}),
        );
        assert_eq!(s, 200, "{v}");
        let r = &v["result"];
        let text = r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (r["isError"] != json!(true), text)
    };
    let (ok, text) = tool(
        &writer,
        "remember",
        json!({"content": "Zanzibar is the meeting spot"}),
    );
    assert!(ok, "{text}");
    let (ok, text) = tool(&reader, "recall", json!({"query": "zanzibar"}));
    assert!(
        ok && text.contains("Zanzibar is the meeting spot"),
        "{text}"
    );
    // Another tenant's key sees nothing; a read key may not write.
    let (ok, text) = tool(&other, "recall", json!({"query": "zanzibar"}));
    assert!(ok && !text.contains("Zanzibar"), "{text}");
    let (ok, text) = tool(&reader, "remember", json!({"content": "x"}));
    assert!(!ok && text.contains("error[forbidden]"), "{text}");
    // The write went through the engine like any other: it is audited.
    let audit = srv.store.list_audit(Default::default()).unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "memory.create" && e.context["via"] == "mcp"),
        "no MCP remember in the audit log"
    );
}

/// Field encryption over the API: a strict subject is created with `"strict": true`, its
/// memory reads back in clear but is not found by keyword search; erasing a subject says
/// its data key was destroyed; the store refuses `strict` without a master key.
#[test]
fn strict_subjects_and_crypto_shredding_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = agentstore_sqlite::OpenOptions::new(dir.path()).create();
    o.master_key = Some(agentstore_sqlite::MasterKeySource::Key(
        agentstore_sqlite::MasterKey::generate(),
    ));
    let store = std::sync::Arc::new(agentstore_sqlite::open(&o).unwrap());
    let srv = common::serve(
        store,
        dir,
        agentstore_server::ServerOptions {
            rate_per_second: 0.0,
            ..Default::default()
        },
    );
    let writer = srv.key("t1", &[KeyScope::Read, KeyScope::Write]);
    let admin = srv.admin("t1");
    let subject = srv.ok(
        "POST",
        "/v1/subjects",
        &writer,
        Some(json!({"external_id": "carol@example.com", "consent": true, "strict": true})),
        201,
    );
    assert_eq!(subject["strict"], true, "{subject}");
    let id = subject["id"].as_str().unwrap().to_owned();
    let memory = srv.ok(
        "POST",
        "/v1/memories",
        &writer,
        Some(json!({"content": "carol likes kumquats", "subject_id": id})),
        200,
    );
    let mid = memory["id"].as_str().unwrap().to_owned();
    let read = srv.ok("GET", &format!("/v1/memories/{mid}"), &writer, None, 200);
    assert_eq!(read["content"], "carol likes kumquats");
    let hits = srv.ok(
        "POST",
        "/v1/search",
        &writer,
        Some(json!({"text": "kumquats", "mode": "keyword"})),
        200,
    );
    assert_eq!(hits["hits"].as_array().map(Vec::len), Some(0), "{hits}");
    let erased = srv.ok("DELETE", &format!("/v1/subjects/{id}"), &admin, None, 200);
    assert_eq!(erased["data_key_destroyed"], true, "{erased}");
    assert_eq!(erased["memories"], 1, "{erased}");

    let plain = start();
    let w = plain.key("t1", &[KeyScope::Read, KeyScope::Write]);
    let (s, v) = plain.call(
        "POST",
        "/v1/subjects",
        &w,
        Some(json!({"external_id": "dave@example.com", "strict": true})),
    );
    assert_eq!((s, code(&v)), (400, "invalid_input"), "{v}");
}
