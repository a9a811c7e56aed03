//! Parts of the data model the reference examples could not reach over HTTP, now routes
//! and parameters: memories filtered and ordered by confidence, success rate, reads and
//! change time; a session's events by tool; a subject found by its external id and
//! updated; a session reassigned to another agent (its subject cannot change).

mod common;

use agentstore::KeyScope;
use common::{TestServer, code, start};
use serde_json::{Value, json};

/// The OpenAPI operation at `path` / `method`.
fn operation(srv: &TestServer, path: &str, method: &str) -> Value {
    let (_, doc, _) = srv.raw("GET", "/v1/openapi.json", None, None);
    doc["paths"][path][method].clone()
}

fn query_params(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of a memory list, following `next`.
fn all_pages(srv: &TestServer, key: &str, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/memories?{query}&limit={limit}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", urlencode(a)));
        }
        let v = srv.ok("GET", &path, key, None, 200);
        out.extend(ids(&v));
        pages += 1;
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return (out, pages),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn memories_are_filtered_and_ordered_by_confidence_success_rate_reads_and_change() {
    let srv = start();
    let k = srv.key("t", &[KeyScope::Write]);
    // (id, confidence, success rate); the batch shares one created_at, so ties fall
    // back to the id, newest-looking first.
    let rows = [
        ("m-a", 0.9, Some(0.8)),
        ("m-b", 0.5, None),
        ("m-c", 0.7, Some(0.4)),
        ("m-d", 0.95, Some(0.8)),
        ("m-e", 0.3, Some(0.95)),
    ];
    let memories: Vec<Value> = rows
        .iter()
        .map(|(id, c, r)| {
            json!({"id": id, "key": id, "kind": "pattern", "content": format!("pattern {id}"),
                   "confidence": c, "success_rate": r})
        })
        .collect();
    srv.ok(
        "POST",
        "/v1/memories/batch",
        &k,
        Some(json!({ "memories": memories })),
        200,
    );
    let list = |q: &str| ids(&srv.ok("GET", &format!("/v1/memories?{q}"), &k, None, 200));

    assert_eq!(
        list("min_confidence=0.7&order=confidence"),
        ["m-d", "m-a", "m-c"]
    );
    assert_eq!(
        list("kind=pattern&min_success_rate=0.5&order=success_rate"),
        ["m-e", "m-d", "m-a"]
    );
    // Without a minimum, the memory without a rate comes last.
    assert_eq!(
        list("order=success_rate"),
        ["m-e", "m-d", "m-a", "m-c", "m-b"]
    );
    srv.ok(
        "POST",
        "/v1/memories/touch",
        &k,
        Some(json!({"ids": ["m-c", "m-c", "m-b"]})),
        200,
    );
    srv.ok(
        "POST",
        "/v1/memories/touch",
        &k,
        Some(json!({"ids": ["m-c"]})),
        200,
    );
    assert_eq!(
        list("order=access_count"),
        ["m-c", "m-b", "m-e", "m-d", "m-a"]
    );

    // A change in place (same content, new rate) moves a memory to the top of `updated`
    // and into `updated_from`.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mark = agentstore::time::now();
    srv.ok(
        "POST",
        "/v1/memories",
        &k,
        Some(
            json!({"key": "m-b", "kind": "pattern", "content": "pattern m-b",
                    "confidence": 0.5, "success_rate": 0.6}),
        ),
        200,
    );
    let from = urlencode(&mark.to_rfc3339());
    assert_eq!(list(&format!("updated_from={from}")), ["m-b"]);
    assert_eq!(list("order=updated")[0], "m-b");

    // Pages smaller than the result neither repeat nor skip, in every new order.
    for order in ["confidence", "success_rate", "access_count", "updated"] {
        let whole = list(&format!("order={order}"));
        assert_eq!(whole.len(), 5);
        let (paged, pages) = all_pages(&srv, &k, &format!("order={order}"), 2);
        assert_eq!(paged, whole, "{order}");
        assert_eq!(pages, 3, "{order}");
    }
    // A cursor of another order is refused.
    let next = srv.ok(
        "GET",
        "/v1/memories?order=confidence&limit=1",
        &k,
        None,
        200,
    )["next"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = srv.call(
        "GET",
        &format!("/v1/memories?order=updated&after={}", urlencode(&next)),
        &k,
        None,
    );
    assert_eq!((s, code(&v)), (400, "invalid_input"), "{v}");

    for bad in [
        "min_confidence=NaN",
        "min_success_rate=inf",
        "min_confidence=high",
        "updated_from=yesterday",
        "order=success",
    ] {
        let (s, v) = srv.call("GET", &format!("/v1/memories?{bad}"), &k, None);
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(
            ["invalid_input", "invalid_query"].contains(&code(&v)),
            "{bad}: {v}"
        );
    }

    let op = operation(&srv, "/v1/memories", "get");
    let params = query_params(&op);
    for p in [
        "min_confidence",
        "min_success_rate",
        "updated_from",
        "order",
    ] {
        assert!(
            params.contains(&p.to_owned()),
            "{p} missing from {params:?}"
        );
    }
    // The order's values, inline or behind a `$ref`.
    let order = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "order")
        .unwrap()["schema"]
        .to_string();
    let (_, doc, _) = srv.raw("GET", "/v1/openapi.json", None, None);
    let order = match order.split("#/components/schemas/").nth(1) {
        Some(rest) => doc["components"]["schemas"][&rest[..rest.find('"').unwrap()]].to_string(),
        None => order,
    };
    for value in ["confidence", "success_rate", "access_count", "updated"] {
        assert!(order.contains(&format!("\"{value}\"")), "{value}: {order}");
    }
}

#[test]
fn a_sessions_events_are_filtered_by_tool_name() {
    let srv = start();
    let k = srv.key("t", &[KeyScope::Write]);
    let s = srv.ok(
        "POST",
        "/v1/sessions",
        &k,
        Some(json!({"kind": "episode"})),
        201,
    );
    let sid = s["id"].as_str().unwrap();
    let events: Vec<Value> = [
        ("context", None),
        ("step", Some("pytest")),
        ("step", Some("git")),
        ("tool_call", Some("pytest")),
        ("step", Some("pytest")),
    ]
    .iter()
    .map(|(kind, tool)| json!({"kind": kind, "content": "x", "tool_name": tool}))
    .collect();
    srv.ok(
        "POST",
        &format!("/v1/sessions/{sid}/events/batch"),
        &k,
        Some(json!({ "events": events })),
        201,
    );
    let seqs = |q: &str| -> (Vec<i64>, Value) {
        let v = srv.ok(
            "GET",
            &format!("/v1/sessions/{sid}/events?{q}"),
            &k,
            None,
            200,
        );
        let seqs = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        (seqs, v["next"].clone())
    };
    assert_eq!(seqs("tool_name=pytest"), (vec![2, 4, 5], Value::Null));
    assert_eq!(
        seqs("tool_name=pytest&kind=step"),
        (vec![2, 5], Value::Null)
    );
    assert_eq!(seqs("tool_name=pytest&limit=2"), (vec![2, 4], json!("4")));
    assert_eq!(
        seqs("tool_name=pytest&limit=2&after_seq=4"),
        (vec![5], Value::Null)
    );
    assert_eq!(seqs("tool_name=cargo"), (vec![], Value::Null));
    let (st, v) = srv.call(
        "GET",
        &format!("/v1/sessions/{sid}/events?tool_name="),
        &k,
        None,
    );
    assert_eq!((st, code(&v)), (400, "invalid_input"), "{v}");
    let op = operation(&srv, "/v1/sessions/{id}/events", "get");
    assert!(query_params(&op).contains(&"tool_name".to_owned()));
}

#[test]
fn a_subject_is_looked_up_by_external_id_and_updated() {
    let srv = start();
    let w = srv.key("t", &[KeyScope::Write]);
    let r = srv.key("t", &[KeyScope::Read]);
    let admin = srv.admin("t");
    let email = "bob.okafor@example.dev";
    let bob = srv.ok(
        "POST",
        "/v1/subjects",
        &w,
        Some(json!({"external_id": email, "consent": true,
                    "metadata": {"role": "user", "plan": "free"}})),
        201,
    );
    let id = bob["id"].as_str().unwrap();

    let found = srv.ok(
        "POST",
        "/v1/subjects/lookup",
        &r,
        Some(json!({ "external_id": email })),
        200,
    );
    assert_eq!(found, bob);
    // No such subject: 404, and the answer does not repeat the address.
    let (s, v) = srv.call(
        "POST",
        "/v1/subjects/lookup",
        &r,
        Some(json!({"external_id": "nobody@example.dev"})),
    );
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");
    assert!(!v.to_string().contains("nobody"), "{v}");
    // Another tenant's key does not find it.
    let other = srv.key("t2", &[KeyScope::Read]);
    let (s, _) = srv.call(
        "POST",
        "/v1/subjects/lookup",
        &other,
        Some(json!({ "external_id": email })),
    );
    assert_eq!(s, 404);
    for (body, want) in [
        (json!({"external_id": ""}), "invalid_input"),
        (json!({}), "invalid_json"),
        (json!({"external_id": 42}), "invalid_json"),
    ] {
        let (s, v) = srv.call("POST", "/v1/subjects/lookup", &r, Some(body.clone()));
        assert_eq!((s, code(&v)), (400, want), "{body}: {v}");
    }

    // PATCH merges metadata (null removes a key) and sets or clears retention.
    let path = format!("/v1/subjects/{id}");
    let updated = srv.ok(
        "PATCH",
        &path,
        &w,
        Some(
            json!({"metadata": {"plan": "pro", "role": null, "theme": "dark"},
                    "retention_days": 30}),
        ),
        200,
    );
    assert_eq!(updated["metadata"], json!({"plan": "pro", "theme": "dark"}));
    assert_eq!(updated["retention_days"], 30);
    assert_eq!(updated["external_id_hash"], bob["external_id_hash"]);
    assert_eq!(updated["consent"], true);
    assert_eq!(srv.ok("GET", &path, &r, None, 200), updated);
    let kept = srv.ok(
        "PATCH",
        &path,
        &w,
        Some(json!({"metadata": {"theme": "light"}})),
        200,
    );
    assert_eq!(kept["retention_days"], 30);
    assert_eq!(kept["metadata"], json!({"plan": "pro", "theme": "light"}));
    let cleared = srv.ok(
        "PATCH",
        &path,
        &w,
        Some(json!({ "retention_days": null })),
        200,
    );
    assert_eq!(cleared["retention_days"], Value::Null);
    assert_eq!(cleared["metadata"], kept["metadata"]);

    // Refused, changing nothing.
    for (key, p, body, status, want) in [
        (
            &w,
            path.as_str(),
            json!({"retention_days": 0}),
            400,
            "invalid_input",
        ),
        (
            &w,
            path.as_str(),
            json!({"metadata": [1]}),
            400,
            "invalid_input",
        ),
        (
            &w,
            path.as_str(),
            json!({"retention_days": "soon"}),
            400,
            "invalid_json",
        ),
        (
            &r,
            path.as_str(),
            json!({"metadata": {"x": 1}}),
            403,
            "forbidden",
        ),
        (
            &w,
            "/v1/subjects/nobody",
            json!({"metadata": {"x": 1}}),
            404,
            "not_found",
        ),
    ] {
        let (s, v) = srv.call("PATCH", p, key, Some(body.clone()));
        assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
    }
    let (s, _) = srv.call(
        "PATCH",
        &format!("/v1/subjects/{id}"),
        &srv.key("t2", &[KeyScope::Write]),
        Some(json!({"metadata": {"x": 1}})),
    );
    assert_eq!(s, 404);
    assert_eq!(srv.ok("GET", &path, &r, None, 200), cleared);

    // Each update is audited with old and new values, never the address.
    let audit = srv.ok(
        "GET",
        &format!("/v1/audit?action=subject.update&resource_id={id}"),
        &admin,
        None,
        200,
    );
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert_eq!(entries[0]["old_values"]["metadata"]["plan"], "free");
    assert_eq!(entries[0]["new_values"]["retention_days"], 30);
    assert!(!audit.to_string().contains(email));

    for (p, m) in [
        ("/v1/subjects/lookup", "post"),
        ("/v1/subjects/{id}", "patch"),
    ] {
        let op = operation(&srv, p, m);
        assert!(op["requestBody"].is_object(), "{p} {m}: {op}");
    }
}

#[test]
fn a_session_is_reassigned_to_an_agent_but_not_to_another_subject() {
    let srv = start();
    let k = srv.key("t", &[KeyScope::Write]);
    let bob = srv.ok(
        "POST",
        "/v1/subjects",
        &k,
        Some(json!({"external_id": "bob@example.dev", "consent": true})),
        201,
    );
    let carol = srv.ok(
        "POST",
        "/v1/subjects",
        &k,
        Some(json!({"external_id": "carol@example.dev", "consent": true})),
        201,
    );
    let agent = srv.ok(
        "POST",
        "/v1/agents",
        &k,
        Some(json!({"name": "coder"})),
        200,
    );
    let (bob, carol, agent) = (
        bob["id"].as_str().unwrap(),
        carol["id"].as_str().unwrap(),
        agent["id"].as_str().unwrap(),
    );
    let task = srv.ok(
        "POST",
        "/v1/sessions",
        &k,
        Some(json!({"kind": "task", "title": "fix it", "subject_id": bob})),
        201,
    );
    let path = format!("/v1/sessions/{}", task["id"].as_str().unwrap());

    let moved = srv.ok(
        "PATCH",
        &path,
        &k,
        Some(json!({"agent_id": agent, "status": "in_progress"})),
        200,
    );
    assert_eq!(moved["agent_id"], agent);
    assert_eq!(moved["subject_id"], bob);
    assert_eq!(moved["status"], "in_progress");
    let listed = srv.ok(
        "GET",
        &format!("/v1/sessions?agent_id={agent}"),
        &k,
        None,
        200,
    );
    assert_eq!(listed["items"][0]["id"], task["id"]);
    // Leaving the field out keeps the agent; null clears it.
    let kept = srv.ok("PATCH", &path, &k, Some(json!({"priority": 2})), 200);
    assert_eq!(kept["agent_id"], agent);
    let cleared = srv.ok("PATCH", &path, &k, Some(json!({"agent_id": null})), 200);
    assert_eq!(cleared["agent_id"], Value::Null);
    let moved = srv.ok("PATCH", &path, &k, Some(json!({"agent_id": agent})), 200);

    // Refused, changing nothing: an unknown agent, a bad id, another subject or none.
    for (body, status, want) in [
        (json!({"agent_id": "no-such-agent"}), 404, "not_found"),
        (json!({"agent_id": "has space"}), 400, "invalid_input"),
        (json!({"agent_id": 7}), 400, "invalid_json"),
        (
            json!({"subject_id": carol, "status": "reassigned"}),
            400,
            "invalid_input",
        ),
        (json!({"subject_id": null}), 400, "invalid_input"),
    ] {
        let (s, v) = srv.call("PATCH", &path, &k, Some(body.clone()));
        assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
        if body.get("subject_id").is_some() {
            assert!(
                v["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("subject"),
                "{v}"
            );
        }
    }
    assert_eq!(srv.ok("GET", &path, &k, None, 200), moved);
    // Naming the current subject is accepted (a client sending the record back).
    let same = srv.ok("PATCH", &path, &k, Some(json!({"subject_id": bob})), 200);
    assert_eq!(same["subject_id"], bob);

    let op = operation(&srv, "/v1/sessions/{id}", "patch");
    let (_, doc, _) = srv.raw("GET", "/v1/openapi.json", None, None);
    let schema = doc["components"]["schemas"]["SessionUpdate"].to_string();
    assert!(op["requestBody"].is_object());
    assert!(
        schema.contains("agent_id") && schema.contains("subject_id"),
        "{schema}"
    );
}
