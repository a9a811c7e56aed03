//! `agentstore mcp` driven by a real MCP client (the official Rust SDK) over stdio.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> (bool, Value) {
    let args = args.as_object().unwrap().clone();
    let r = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap();
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<String>();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (r.is_error != Some(true), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_tools_remember_recall_forget_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_agentstore")).configure(|cmd| {
            cmd.env_remove("AGENTSTORE_DATA_DIR")
                .env_remove("AGENTSTORE_MODEL_DIR")
                .env_remove("AGENTSTORE_TENANT")
                .arg("--data-dir")
                .arg(&data)
                .args(["--tenant", "desk", "mcp"]);
        }),
    )
    .unwrap();
    let client = ().serve(transport).await.unwrap();

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
        json!({"content": "The user's cat is called Miso", "key": "pet", "tags": ["family"]}),
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
    let (ok, _) = call(
        &client,
        "append_event",
        json!({"session_id": session, "role": "assistant", "content": "hi, how can I help?"}),
    )
    .await;
    assert!(ok);
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
    assert_eq!(contents, ["hello there", "hi, how can I help?"]);

    let (ok, v) = call(&client, "forget", json!({"id": id})).await;
    assert!(ok, "{v}");
    let (_, v) = call(&client, "recall", json!({"query": "cat"})).await;
    assert_eq!(v["memories"], json!([]));

    // Errors are tool errors the agent can read, with the engine's code.
    let (ok, v) = call(
        &client,
        "get_session_context",
        json!({"session_id": "nope"}),
    )
    .await;
    assert!(!ok);
    assert!(v.as_str().unwrap().contains("error[not_found]"), "{v}");
    let (ok, v) = call(&client, "remember", json!({"content": ""})).await;
    assert!(!ok);
    assert!(v.as_str().unwrap().contains("error[invalid_input]"), "{v}");
    let (ok, _) = call(&client, "search_documents", json!({"query": "anything"})).await;
    assert!(ok);
    client.cancel().await.unwrap();
}
