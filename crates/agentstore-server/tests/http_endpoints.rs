//! Endpoints and request handling added after the reference examples showed their
//! absence, over real HTTP: metric label filters, refused unknown query parameters, a
//! kv entry's TTL, the caller's address and user agent in the audit log, and the store's
//! vector models.

mod common;

use std::sync::Arc;

use agentstore::{Metric, VectorModel};
use agentstore_server::ServerOptions;
use agentstore_sqlite::OpenOptions;
use common::{TestServer, code, start};
use serde_json::{Value, json};

/// One label and two labels filter the same way on the range, downsample and top-k
/// routes (a single `label=` used to be refused by the last two).
#[test]
fn metric_routes_take_one_label_or_several() {
    let srv = start();
    let k = srv.key("t", &[agentstore::KeyScope::Write]);
    let at = "2025-01-01T00:00:00Z";
    let points = json!({"points": [
        {"name": "latency", "labels": {"host": "a", "region": "eu"}, "value": 1.0, "at": at},
        {"name": "latency", "labels": {"host": "b", "region": "eu"}, "value": 2.0, "at": at},
        {"name": "latency", "labels": {"host": "c", "region": "us"}, "value": 3.0, "at": at},
    ]});
    assert_eq!(
        srv.ok("POST", "/v1/metric-points", &k, Some(points), 200)["count"],
        3
    );
    let one = "name=latency&label=region:eu";
    let two = "name=latency&label=region:eu&label=host:b";
    for (route, extra) in [
        ("/v1/metric-points", ""),
        ("/v1/metric-points/downsample", "&bucket_secs=60"),
        ("/v1/metric-points/top", "&k=5"),
    ] {
        let v = srv.ok("GET", &format!("{route}?{one}{extra}"), &k, None, 200);
        let items = v["items"].as_array().unwrap();
        match route {
            "/v1/metric-points/downsample" => {
                assert_eq!(items.len(), 1, "{route}: {v}");
                assert_eq!(items[0]["count"], 2, "{route}: {v}");
                assert_eq!(items[0]["sum"], 3.0, "{route}: {v}");
            }
            _ => assert_eq!(items.len(), 2, "{route}: {v}"),
        }
        let v = srv.ok("GET", &format!("{route}?{two}{extra}"), &k, None, 200);
        let items = v["items"].as_array().unwrap();
        match route {
            "/v1/metric-points/downsample" => assert_eq!(items[0]["sum"], 2.0, "{route}: {v}"),
            _ => {
                assert_eq!(items.len(), 1, "{route}: {v}");
                assert_eq!(items[0]["value"], 2.0, "{route}: {v}");
            }
        }
        // A label that is not key:value is still refused.
        let (s, v) = srv.call(
            "GET",
            &format!("{route}?name=latency&label=eu{extra}"),
            &k,
            None,
        );
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{route}: {v}");
    }
}

/// A query parameter the endpoint does not take is a 400 naming it, never an answer
/// that silently ignores it; and the request changes nothing.
#[test]
fn unknown_query_parameters_are_refused() {
    let srv = start();
    let k = srv.admin("t");
    srv.ok("PUT", "/v1/kv/keep", &k, Some(json!({"value": 1})), 200);
    for (method, path, param) in [
        ("GET", "/v1/sessions?kind=episode&domian=web-api", "domian"),
        (
            "GET",
            "/v1/memories?kind=pattern&min_sucess_rate=0.99",
            "min_sucess_rate",
        ),
        ("GET", "/v1/memories/by-key?key=k&namespce=a", "namespce"),
        ("GET", "/v1/documents?doctype=faq", "doctype"),
        ("GET", "/v1/agents?nmae=x", "nmae"),
        ("GET", "/v1/audit?actr=x", "actr"),
        ("GET", "/v1/kv?prefx=a", "prefx"),
        ("DELETE", "/v1/kv?prefix=k&dry_run=true", "dry_run"),
        ("GET", "/v1/checkpoints?session_id=s&thread=x", "thread"),
        ("GET", "/v1/metric-points?name=m&lable=a:b", "lable"),
        ("GET", "/v1/metric-points/top?name=m&limit=3", "limit"),
        (
            "GET",
            "/v1/metric-points/downsample?name=m&bucket_secs=60&bucket=1",
            "bucket",
        ),
        ("GET", "/v1/usage/aggregate?group=model&agent=x", "agent"),
        // Endpoints without query parameters refuse any.
        ("GET", "/v1/kv/keep?fields=value", "fields"),
        ("DELETE", "/v1/kv/keep?soft=true", "soft"),
        ("GET", "/v1/vector-models?tenant=other", "tenant"),
    ] {
        let (s, v) = srv.call(method, path, &k, None);
        assert_eq!(
            (s, code(&v)),
            (400, "invalid_input"),
            "{method} {path}: {v}"
        );
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(param), "{method} {path}: {message}");
    }
    assert_eq!(srv.ok("GET", "/v1/kv/keep", &k, None, 200)["value"], 1);
    // The parameters an endpoint does take still work, and a bare `?` is no parameter.
    srv.ok("GET", "/v1/sessions?kind=episode&limit=5", &k, None, 200);
    srv.ok("GET", "/v1/kv/keep?", &k, None, 200);
}

/// `POST /v1/kv/{key}/expire` changes a live key's TTL and keeps its value; a missing
/// or expired key is `not_found` and stays gone.
#[test]
fn kv_expire_refreshes_and_clears_a_ttl() {
    let srv = start();
    let k = srv.key("t", &[agentstore::KeyScope::Write]);
    let set = srv.ok(
        "PUT",
        "/v1/kv/login:alice",
        &k,
        Some(json!({"value": {"user": "alice"}, "ttl_ms": 60_000})),
        200,
    );
    let expiry = |v: &Value| -> agentstore::Timestamp {
        serde_json::from_value(v["expires_at"].clone()).unwrap()
    };
    let first_expiry = expiry(&set);

    // Extended: a later expiry, same value, a new version.
    srv.ok(
        "POST",
        "/v1/kv/login:alice/expire",
        &k,
        Some(json!({"ttl_ms": 3_600_000})),
        204,
    );
    let got = srv.ok("GET", "/v1/kv/login:alice", &k, None, 200);
    assert_eq!(got["value"], json!({"user": "alice"}));
    assert!(expiry(&got) > first_expiry, "{got}");
    assert_eq!(got["version"], set["version"].as_i64().unwrap() + 1);

    // null: the key no longer expires.
    srv.ok(
        "POST",
        "/v1/kv/login:alice/expire",
        &k,
        Some(json!({"ttl_ms": null})),
        204,
    );
    let got = srv.ok("GET", "/v1/kv/login:alice", &k, None, 200);
    assert!(got["expires_at"].is_null(), "{got}");

    // The field is required: a misspelled one must not make the key permanent. The
    // document says so, and that it may be null.
    let doc = srv.ok("GET", "/v1/openapi.json", &k, None, 200);
    let schema = &doc["components"]["schemas"]["KvExpire"];
    assert_eq!(schema["required"], json!(["ttl_ms"]), "{schema}");
    assert_eq!(
        schema["properties"]["ttl_ms"]["type"],
        json!(["integer", "null"]),
        "{schema}"
    );
    for body in [json!({}), json!({"ttl": 5})] {
        let (s, v) = srv.call("POST", "/v1/kv/login:alice/expire", &k, Some(body));
        assert_eq!((s, code(&v)), (400, "invalid_json"), "{v}");
    }

    // A key that never existed.
    let (s, v) = srv.call(
        "POST",
        "/v1/kv/login:nobody/expire",
        &k,
        Some(json!({"ttl_ms": 60_000})),
    );
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");

    // An expired key cannot be revived.
    srv.ok(
        "PUT",
        "/v1/kv/login:bob",
        &k,
        Some(json!({"value": "bob", "ttl_ms": 1})),
        200,
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (s, v) = srv.call(
        "POST",
        "/v1/kv/login:bob/expire",
        &k,
        Some(json!({"ttl_ms": 60_000})),
    );
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");
    let (s, _) = srv.call("GET", "/v1/kv/login:bob", &k, None);
    assert_eq!(s, 404);

    // A read key may not change TTLs.
    let reader = srv.key("t", &[agentstore::KeyScope::Read]);
    let (s, v) = srv.call(
        "POST",
        "/v1/kv/login:alice/expire",
        &reader,
        Some(json!({"ttl_ms": 1})),
    );
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
}

/// A request with a `User-Agent` of its own; returns the status.
fn with_agent(srv: &TestServer, key: &str, path: &str, agent: &str, body: Value) -> u16 {
    let client: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method("PUT")
        .uri(format!("{}{path}", srv.base))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("user-agent", agent)
        .body(body.to_string())
        .unwrap();
    client.run(req).unwrap().status().as_u16()
}

/// An audited write through HTTP records the peer's address and the user agent, the
/// latter without control characters and cut to a bounded length.
#[test]
fn audit_context_has_remote_address_and_user_agent() {
    let srv = start();
    let k = srv.admin("t");
    let agent = format!("login-service/2.1\t(ci){}", "x".repeat(400));
    assert_eq!(
        with_agent(&srv, &k, "/v1/kv/session:1", &agent, json!({"value": 1})),
        200
    );
    let log = srv.ok("GET", "/v1/audit?action=kv.set", &k, None, 200);
    let entry = &log["items"][0];
    let context = &entry["context"];
    assert_eq!(context["via"], "http", "{entry}");
    assert_eq!(context["remote_addr"], "127.0.0.1", "{entry}");
    let recorded = context["user_agent"].as_str().unwrap();
    assert!(
        recorded.starts_with("login-service/2.1(ci)xxx"),
        "{recorded}"
    );
    assert_eq!(recorded.chars().count(), 256, "{recorded}");
    assert!(!recorded.chars().any(char::is_control), "{recorded}");

    // Through the test client too, whose user agent is its library's.
    srv.ok(
        "POST",
        "/v1/kv/session:1/expire",
        &k,
        Some(json!({"ttl_ms": 60_000})),
        204,
    );
    let log = srv.ok("GET", "/v1/audit?action=kv.expire", &k, None, 200);
    let context = &log["items"][0]["context"];
    assert_eq!(context["remote_addr"], "127.0.0.1", "{context}");
    assert!(
        context["user_agent"]
            .as_str()
            .is_some_and(|a| a.starts_with("ureq")),
        "{context}"
    );
}

/// `GET /v1/vector-models`: the store's models with their dimension and metric, the
/// configured one marked active even before its first vector, and no vector counts
/// (those would be across tenants).
#[test]
fn vector_models_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = agentstore_sqlite::open(&OpenOptions::new(dir.path()).create())
        .unwrap()
        .with_vector_model(VectorModel {
            id: "tiny-3".into(),
            dimension: 3,
            metric: Metric::Dot,
        });
    let srv = common::serve(
        Arc::new(store),
        dir,
        ServerOptions {
            rate_per_second: 0.0,
            ..ServerOptions::default()
        },
    );
    let reader = srv.key("t", &[agentstore::KeyScope::Read]);
    let writer = srv.key("t", &[agentstore::KeyScope::Write]);
    let want =
        json!({"items": [{"id": "tiny-3", "dimension": 3, "metric": "dot", "active": true}]});
    assert_eq!(srv.ok("GET", "/v1/vector-models", &reader, None, 200), want);
    srv.ok(
        "POST",
        "/v1/memories",
        &writer,
        Some(json!({"content": "a fact", "vector": [0.1, 0.2, 0.3]})),
        200,
    );
    assert_eq!(srv.ok("GET", "/v1/vector-models", &reader, None, 200), want);
    // Another tenant sees the same store-wide list and nothing of t's vectors.
    let other = srv.key("u", &[agentstore::KeyScope::Read]);
    assert_eq!(srv.ok("GET", "/v1/vector-models", &other, None, 200), want);

    // A store without a configured model lists caller-supplied vectors' models,
    // none active.
    let plain = start();
    let w = plain.key("t", &[agentstore::KeyScope::Write]);
    assert_eq!(
        plain.ok("GET", "/v1/vector-models", &w, None, 200),
        json!({"items": []})
    );
    plain.ok(
        "POST",
        "/v1/memories",
        &w,
        Some(json!({"content": "a fact", "vector": [0.5, 0.5]})),
        200,
    );
    assert_eq!(
        plain.ok("GET", "/v1/vector-models", &w, None, 200),
        json!({"items": [{"id": "external-2d", "dimension": 2, "metric": "cosine", "active": false}]})
    );
}

/// `POST /v1/chunks/touch` counts a retrieval of each chunk of the caller's tenant: the
/// count and time show on the chunk; another tenant's chunk and unknown ids are not
/// counted; a read-only key is refused.
#[test]
fn chunk_queries_are_counted() {
    let srv = start();
    let k = srv.key("t", &[agentstore::KeyScope::Write]);
    let other = srv.key("u", &[agentstore::KeyScope::Write]);
    let reader = srv.key("t", &[agentstore::KeyScope::Read]);
    let doc = srv.ok(
        "POST",
        "/v1/documents",
        &k,
        Some(json!({"content": "Tides follow the moon. Storms follow the pressure."})),
        200,
    );
    let doc_id = doc["id"].as_str().unwrap().to_owned();
    let chunks = srv.ok(
        "GET",
        &format!("/v1/documents/{doc_id}/chunks"),
        &k,
        None,
        200,
    );
    let chunk = chunks["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(chunks["items"][0]["query_count"], 0);
    let body = json!({"ids": [chunk, "no-such-chunk"]});
    assert_eq!(
        srv.ok("POST", "/v1/chunks/touch", &k, Some(body.clone()), 200)["count"],
        1
    );
    srv.ok("POST", "/v1/chunks/touch", &k, Some(body.clone()), 200);
    assert_eq!(
        srv.ok("POST", "/v1/chunks/touch", &other, Some(body.clone()), 200)["count"],
        0
    );
    let (s, v) = srv.call("POST", "/v1/chunks/touch", &reader, Some(body));
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let chunks = srv.ok(
        "GET",
        &format!("/v1/documents/{doc_id}/chunks"),
        &k,
        None,
        200,
    );
    assert_eq!(chunks["items"][0]["query_count"], 2, "{chunks}");
    assert!(
        chunks["items"][0]["last_queried_at"].is_string(),
        "{chunks}"
    );
}

/// `GET /v1/memories?metadata=path:op:value` filters on the metadata, each repeated
/// condition holding; a malformed condition is `invalid_input`.
#[test]
fn memories_filter_on_metadata_conditions() {
    let srv = start();
    let k = srv.key("t", &[agentstore::KeyScope::Write]);
    for (key, mastery) in [
        ("algebra", json!(0.3)),
        ("geometry", json!(0.8)),
        ("art", json!("low")),
    ] {
        let body = json!({"content": format!("state of {key}"), "key": key, "kind": "knowledge",
                          "metadata": {"mastery": mastery, "domain": "school"}});
        srv.ok("POST", "/v1/memories", &k, Some(body), 200);
    }
    let keys = |query: &str| -> Vec<String> {
        let v = srv.ok(
            "GET",
            &format!("/v1/memories?kind=knowledge&{query}"),
            &k,
            None,
            200,
        );
        let mut keys: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["key"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys("metadata=mastery:lt:0.5"), ["algebra"]);
    assert_eq!(keys("metadata=mastery:eq:low"), ["art"]);
    assert_eq!(
        keys("metadata=domain:eq:school&metadata=mastery:gte:0.3"),
        ["algebra", "geometry"]
    );
    for bad in [
        "mastery",
        "mastery:about:1",
        "mastery:lt:true",
        "a%20b:eq:1",
    ] {
        let (s, v) = srv.call("GET", &format!("/v1/memories?metadata={bad}"), &k, None);
        assert_eq!((s, code(&v)), (400, "invalid_input"), "{bad}: {v}");
    }
}
