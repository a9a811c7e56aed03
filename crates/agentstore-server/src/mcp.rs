//! The MCP (Model Context Protocol) tools an agent calls directly: remember, recall,
//! forget, append_event, get_session_context, search_documents. Served over stdio
//! (`agentstore mcp`, one tenant fixed by the command line) and over streamable HTTP at
//! `/mcp` (the tenant and scopes of the request's API key, checked per call).

use std::sync::Arc;

use agentstore::backend::EventQuery;
use agentstore::search::{SearchMode, Target};
use agentstore::{
    KeyScope, Namespace, NewEvent, NewMemory, NewSession, Scope, SearchRequest, Store,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Extensions, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;

/// Where a call's tenant comes from.
#[derive(Clone)]
enum Access {
    /// stdio: the command line's scope, all tools allowed.
    Fixed(Scope),
    /// HTTP: the API key the request was authenticated with.
    PerRequest,
}

/// The MCP server of one store.
#[derive(Clone)]
pub struct McpTools {
    store: Arc<Store>,
    access: Access,
    /// The HTTP server's store-call limit (`AppState::store_slots`), shared so MCP
    /// calls queue with the REST ones; None on stdio.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    tool_router: ToolRouter<Self>,
}

/// A tool's failure, as text the agent can read (the call's `isError` is set).
type ToolResult = Result<String, String>;

fn failed(e: agentstore::Error) -> String {
    format!("error[{}]: {e}", e.code())
}

fn text(v: Value) -> ToolResult {
    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
}

fn namespace(s: Option<&str>) -> Result<Option<Namespace>, String> {
    s.map(Namespace::parse_path).transpose().map_err(failed)
}

/// Arguments of `remember`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RememberArgs {
    /// What to remember.
    pub content: String,
    /// A key: remembering the same key again supersedes the old version (which stays
    /// in the history).
    #[serde(default)]
    pub key: Option<String>,
    /// fact (default), preference, pattern, summary, knowledge, evidence, context, ...
    #[serde(default)]
    pub kind: Option<String>,
    /// Namespace path, e.g. `app/user-42`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Importance from 0 to 1.
    #[serde(default)]
    pub importance: Option<f64>,
    /// The session this was learned in.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Arguments of `recall` and `search_documents`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    /// What to look for, in words.
    pub query: String,
    /// Only under this namespace path, e.g. `app/user-42`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Most results (default 5, at most 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Arguments of `forget`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ForgetArgs {
    /// The memory id (from remember or recall).
    pub id: String,
}

/// Arguments of `append_event`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AppendArgs {
    /// The session; when absent a new conversation session is created and its id
    /// returned.
    #[serde(default)]
    pub session_id: Option<String>,
    /// message (default), step, tool_call, decision, ...
    #[serde(default)]
    pub kind: Option<String>,
    /// user, assistant, tool, system, ...
    #[serde(default)]
    pub role: Option<String>,
    /// The text.
    pub content: String,
}

/// Arguments of `get_session_context`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ContextArgs {
    /// The session.
    pub session_id: String,
    /// How many of the latest events (default 20, at most 200).
    #[serde(default)]
    pub last: Option<usize>,
}

impl McpTools {
    /// Tools for stdio: every call acts in `scope`.
    pub fn stdio(store: Arc<Store>, scope: Scope) -> Self {
        McpTools {
            store,
            access: Access::Fixed(scope),
            slots: None,
            tool_router: Self::tool_router(),
        }
    }

    /// Tools for HTTP: every call acts as the request's API key.
    pub(crate) fn http(store: Arc<Store>, slots: Arc<tokio::sync::Semaphore>) -> Self {
        McpTools {
            store,
            access: Access::PerRequest,
            slots: Some(slots),
            tool_router: Self::tool_router(),
        }
    }

    /// The scope of a call, if its caller may use `needs`.
    fn scope(&self, ext: &Extensions, needs: KeyScope) -> Result<Scope, String> {
        match &self.access {
            Access::Fixed(s) => Ok(s.clone()),
            Access::PerRequest => {
                let caller = ext
                    .get::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<Caller>())
                    .ok_or("error[unauthorized]: an API key is required")?;
                if !caller.key.allows(needs, agentstore::time::now()) {
                    return Err(format!(
                        "error[forbidden]: this tool needs a key with the '{}' scope",
                        needs.as_str()
                    ));
                }
                let mut scope = caller.scope();
                scope.context["via"] = json!("mcp");
                Ok(scope)
            }
        }
    }

    /// Runs a store call off the async threads (SQLite blocks).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> agentstore::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        let _slot = match &self.slots {
            Some(s) => Some(
                s.acquire()
                    .await
                    .map_err(|_| "error[unavailable]: shutting down".to_owned())?,
            ),
            None => None,
        };
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| format!("error[internal]: {e}"))?
            .map_err(failed)
    }

    async fn search(
        &self,
        scope: Scope,
        q: QueryArgs,
        target: Target,
    ) -> Result<Vec<agentstore::SearchHit>, String> {
        let ns = namespace(q.namespace.as_deref())?;
        let limit = q.limit.unwrap_or(5).clamp(1, 50);
        self.run(move |s| {
            let mut req = SearchRequest::text(q.query);
            req.targets = vec![target];
            req.limit = limit;
            req.filter.namespace_prefix = ns;
            // Hybrid when the store can embed the question, keyword otherwise.
            if s.embedder().is_none() {
                req.mode = Some(SearchMode::Keyword);
            }
            s.search(&scope, req)
        })
        .await
    }
}

#[tool_router]
impl McpTools {
    #[tool(
        description = "Remember a fact, preference or other knowledge for later. With a key, remembering the same key again replaces the current version."
    )]
    async fn remember(
        &self,
        ext: Extensions,
        Parameters(a): Parameters<RememberArgs>,
    ) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Write)?;
        let mut m = NewMemory::new(a.content);
        m.key = a.key;
        if let Some(k) = a.kind {
            m.kind = k;
        }
        m.namespace = namespace(a.namespace.as_deref())?.unwrap_or_default();
        m.tags = a.tags;
        m.importance = a.importance;
        m.source_sessions = a.session_id.into_iter().collect();
        let outcome = self.run(move |s| s.remember(&scope, m)).await?;
        text(json!(outcome))
    }

    #[tool(
        description = "Recall memories relevant to a question, best first, with their ids and scores."
    )]
    async fn recall(&self, ext: Extensions, Parameters(q): Parameters<QueryArgs>) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Read)?;
        let hits = self.search(scope, q, Target::Memory).await?;
        let items: Vec<Value> = hits
            .into_iter()
            .map(|h| match h.record {
                agentstore::search::HitRecord::Memory(m) => json!({
                    "id": m.id, "content": m.content, "kind": m.kind, "key": m.key,
                    "namespace": m.namespace, "tags": m.tags, "score": h.score,
                    "updated": m.created_at,
                }),
                other => json!({"id": h.id, "record": other, "score": h.score}),
            })
            .collect();
        text(json!({ "memories": items }))
    }

    #[tool(description = "Forget (delete) a memory by id.")]
    async fn forget(&self, ext: Extensions, Parameters(a): Parameters<ForgetArgs>) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Write)?;
        let id = a.id.clone();
        self.run(move |s| s.forget(&scope, &id)).await?;
        text(json!({ "forgotten": a.id }))
    }

    #[tool(
        description = "Append a message or step to a session (a new conversation session when no session_id is given)."
    )]
    async fn append_event(
        &self,
        ext: Extensions,
        Parameters(a): Parameters<AppendArgs>,
    ) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Write)?;
        let event = self
            .run(move |s| {
                let session_id = match a.session_id {
                    Some(id) => id,
                    None => {
                        s.create_session(&scope, NewSession::new("conversation"))?
                            .id
                    }
                };
                let e = NewEvent {
                    kind: a.kind.unwrap_or_else(|| "message".into()),
                    role: a.role,
                    content: Some(a.content),
                    ..NewEvent::default()
                };
                s.append_event(&scope, &session_id, e)
            })
            .await?;
        text(json!({ "session_id": event.session_id, "event_id": event.id, "seq": event.seq }))
    }

    #[tool(
        description = "A session's details and its latest events in order, to pick up where it left off."
    )]
    async fn get_session_context(
        &self,
        ext: Extensions,
        Parameters(a): Parameters<ContextArgs>,
    ) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Read)?;
        let last = a.last.unwrap_or(20).clamp(1, 200);
        let (session, mut events) = self
            .run(move |s| {
                let session = s.get_session(&scope, &a.session_id)?;
                let page = s.list_events(
                    &scope,
                    EventQuery {
                        session_id: a.session_id,
                        descending: true,
                        limit: last,
                        ..EventQuery::default()
                    },
                )?;
                Ok((session, page.items))
            })
            .await?;
        events.reverse();
        let events: Vec<Value> = events
            .into_iter()
            .map(|e| json!({"seq": e.seq, "kind": e.kind, "role": e.role, "content": e.content, "tool_name": e.tool_name, "at": e.created_at}))
            .collect();
        text(json!({ "session": session, "events": events }))
    }

    #[tool(
        description = "Search the stored documents (their chunks) for passages relevant to a question."
    )]
    async fn search_documents(
        &self,
        ext: Extensions,
        Parameters(q): Parameters<QueryArgs>,
    ) -> ToolResult {
        let scope = self.scope(&ext, KeyScope::Read)?;
        let hits = self.search(scope, q, Target::Chunk).await?;
        let items: Vec<Value> = hits
            .into_iter()
            .map(|h| match h.record {
                agentstore::search::HitRecord::Chunk(c) => json!({
                    "document_id": c.document_id, "chunk_id": c.id, "content": c.content,
                    "score": h.score,
                }),
                other => json!({"id": h.id, "record": other, "score": h.score}),
            })
            .collect();
        text(json!({ "passages": items }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves the tools on stdin/stdout until the client closes the stream. Logs must go to
/// stderr: stdout carries the protocol.
pub async fn serve_stdio(store: Arc<Store>, scope: Scope) -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let running = McpTools::stdio(store, scope)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
