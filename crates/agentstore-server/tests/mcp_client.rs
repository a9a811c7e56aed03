//! `/mcp` driven by a real MCP client (the official Rust SDK's streamable HTTP client),
//! as a desktop agent configured with the server's URL and an API key reaches it.

mod common;

use agentstore::{KeyScope, NewDocument, Scope};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn connect(base: &str, key: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key),
    );
    ().serve(transport).await.expect("the MCP handshake")
}

/// Calls a tool; returns whether it succeeded and its text, parsed as JSON when it is.
async fn call(client: &Client, tool: &'static str, args: Value) -> (bool, Value) {
    let r = client
        .call_tool(
            CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (r.is_error != Some(true), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_over_streamable_http() {
    let srv = common::start();
    let writer = srv.key("t1", &[KeyScope::Read, KeyScope::Write]);
    let reader = srv.key("t1", &[KeyScope::Read]);
    let other = srv.key("t2", &[KeyScope::Read, KeyScope::Write]);
    // A document to find, put by the library beside the server.
    let mut doc = NewDocument::new("The lighthouse keeper logs the tide every dawn.");
    doc.title = Some("Lighthouse".into());
    srv.store
        .put_document(&Scope::new("t1", "test"), doc)
        .unwrap();

    let client = connect(&srv.base, &writer).await;
    let info = client.peer_info().expect("server info");
    assert!(info.capabilities.tools.is_some(), "{info:?}");
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in [
        "remember",
        "recall",
        "forget",
        "append_event",
        "get_session_context",
        "search_documents",
    ] {
        assert!(tools.iter().any(|n| n == t), "{t} missing from {tools:?}");
    }

    let (ok, v) = call(
        &client,
        "remember",
        json!({"content": "The user's cat is called Miso", "key": "pet"}),
    )
    .await;
    assert!(ok, "{v}");
    let (ok, v) = call(
        &client,
        "recall",
        json!({"query": "what is the cat called"}),
    )
    .await;
    assert!(ok, "{v}");
    let memories = v["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 1, "{v}");
    assert_eq!(memories[0]["content"], "The user's cat is called Miso");
    let id = memories[0]["id"].as_str().unwrap().to_owned();

    let (ok, v) = call(
        &client,
        "append_event",
        json!({"role": "user", "content": "hello there"}),
    )
    .await;
    assert!(ok, "{v}");
    let session = v["session_id"].as_str().unwrap().to_owned();
    let (ok, v) = call(
        &client,
        "append_event",
        json!({"session_id": session, "role": "assistant", "content": "hi!"}),
    )
    .await;
    assert!(ok, "{v}");
    let (ok, v) = call(
        &client,
        "get_session_context",
        json!({"session_id": session}),
    )
    .await;
    assert!(ok, "{v}");
    let contents: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["hello there", "hi!"]);

    let (ok, v) = call(
        &client,
        "search_documents",
        json!({"query": "lighthouse tide"}),
    )
    .await;
    assert!(ok, "{v}");
    assert!(
        v.to_string().contains("lighthouse keeper logs the tide"),
        "the document is not found: {v}"
    );

    // Each connection acts as its key: another tenant sees nothing of t1, and a read key
    // reads but may not write.
    let stranger = connect(&srv.base, &other).await;
    let (ok, v) = call(&stranger, "recall", json!({"query": "cat"})).await;
    assert!(ok, "{v}");
    assert_eq!(v["memories"], json!([]), "{v}");
    let (ok, v) = call(
        &stranger,
        "get_session_context",
        json!({"session_id": session}),
    )
    .await;
    assert!(!ok && v.to_string().contains("error[not_found]"), "{v}");
    let (ok, v) = call(
        &stranger,
        "search_documents",
        json!({"query": "lighthouse"}),
    )
    .await;
    assert!(ok && !v.to_string().contains("lighthouse keeper"), "{v}");
    stranger.cancel().await.unwrap();
    let read_only = connect(&srv.base, &reader).await;
    let (ok, v) = call(&read_only, "recall", json!({"query": "cat"})).await;
    assert!(ok && v["memories"].as_array().unwrap().len() == 1, "{v}");
    let (ok, v) = call(&read_only, "forget", json!({"id": id})).await;
    assert!(!ok && v.to_string().contains("error[forbidden]"), "{v}");
    read_only.cancel().await.unwrap();

    // Errors come back as tool errors with the engine's code.
    let (ok, v) = call(&client, "remember", json!({"content": ""})).await;
    assert!(!ok && v.to_string().contains("error[invalid_input]"), "{v}");
    let (ok, v) = call(&client, "forget", json!({"id": id})).await;
    assert!(ok, "{v}");
    let (_, v) = call(&client, "recall", json!({"query": "cat"})).await;
    assert_eq!(v["memories"], json!([]), "{v}");
    client.cancel().await.unwrap();

    // Without a key the handshake is refused.
    let transport = StreamableHttpClientTransport::from_uri(format!("{}/mcp", srv.base));
    assert!(
        ().serve(transport).await.is_err(),
        "a client without a key got in"
    );
}
