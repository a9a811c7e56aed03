//! MCP messages: what a client sends to `/mcp` or `agentstore mcp` is parsed as a
//! JSON-RPC message by the SDK, and a tool call's arguments by agentstore's argument
//! types. Nothing may panic, and accepted arguments round-trip through their namespace
//! parser the way the tools use them.
#![no_main]

use agentstore_server::mcp::{AppendArgs, ContextArgs, ForgetArgs, QueryArgs, RememberArgs};
use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;

fn arguments(v: &serde_json::Value) {
    if let Ok(a) = serde_json::from_value::<RememberArgs>(v.clone())
        && let Some(ns) = &a.namespace
    {
        let _ = agentstore::Namespace::parse_path(ns);
    }
    if let Ok(a) = serde_json::from_value::<QueryArgs>(v.clone())
        && let Some(ns) = &a.namespace
    {
        let _ = agentstore::Namespace::parse_path(ns);
    }
    let _ = serde_json::from_value::<ForgetArgs>(v.clone());
    let _ = serde_json::from_value::<AppendArgs>(v.clone());
    let _ = serde_json::from_value::<ContextArgs>(v.clone());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
        let v = serde_json::to_value(&msg).expect("a parsed message serializes");
        if let Some(args) = v.pointer("/params/arguments") {
            arguments(args);
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        arguments(&v);
    }
});
