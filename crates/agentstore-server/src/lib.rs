//! agentstore's HTTP server: JSON REST under `/v1` for every entity and for search, its
//! OpenAPI 3.1 document at `/v1/openapi.json`, API keys confining each request to one
//! tenant, a token-bucket rate limit per key, `/healthz`, `/readyz` and Prometheus
//! `/metrics`. Several servers over one store may share an optional Redis for their rate
//! limits and key revocations ([`shared`]); none needs it to serve.
//!
//! Data flow of a request: [`metrics::track`] (request id, timing, log line) →
//! [`auth::authenticate`] (key → tenant through the key cache, rate limit) → the
//! route's scope check → the handler, which validates nothing itself and calls
//! [`agentstore::Store`] on tokio's blocking pool (the store is synchronous; SQLite calls
//! block). The engine validates, and its errors become `{code, message}` responses
//! through one table ([`error::STATUS`]).

pub mod api;
pub mod auth;
pub mod error;
pub mod mcp;
mod metrics;
mod routes;
pub mod shared;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentstore::Store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::error::ApiError;

/// Settings of one server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests per second each key may make on average (0: unlimited).
    pub rate_per_second: f64,
    /// Requests a key may make at once before the average applies.
    pub rate_burst: u32,
    /// How often the server sweeps every tenant for expired records and records past
    /// their retention (None: never; `agentstore maintenance` still does).
    pub sweep_interval: Option<std::time::Duration>,
    /// `Host` header values `/mcp` answers (host, or host:port), against DNS rebinding:
    /// a web page in a browser on the server's machine must not reach it under a name
    /// of its own. Empty: any host.
    pub mcp_allowed_hosts: Vec<String>,
    /// Redis shared by the servers of a group (`redis://host:port/db`): one rate-limit
    /// bucket per key across them, and revocations that reach every server's key cache
    /// at once. None: this server's own state only. Redis down or unreachable, even at
    /// start, never stops the server; see [`shared`].
    pub redis_url: Option<String>,
}

/// The hosts `/mcp` answers by default: the loopback names.
pub const DEFAULT_MCP_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            // Above the engine's 1 MiB content limit with room for JSON escaping and the
            // other fields; a document of several MiB is sent as text, so 16 MiB.
            max_body_bytes: 16 << 20,
            rate_per_second: 1000.0,
            rate_burst: 2000,
            mcp_allowed_hosts: DEFAULT_MCP_HOSTS.map(String::from).to_vec(),
            sweep_interval: Some(std::time::Duration::from_secs(3600)),
            redis_url: None,
        }
    }
}

/// A request's id, set by [`metrics::track`] for everything after it.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    store: Arc<Store>,
    /// Rate limits and the key cache, through Redis when there is one.
    shared: Arc<shared::Shared>,
    metrics: Arc<metrics::Metrics>,
    openapi: Arc<Value>,
    /// False once shutdown has begun: `/readyz` then says so, so a load balancer stops
    /// sending new requests while in-flight ones finish.
    ready: Arc<AtomicBool>,
    /// Store calls running at once. Beyond the store's pooled connections, more threads
    /// only add connection opens and contention: under 64 concurrent searches the tail
    /// latency reached seconds. Waiting here is cheap and fair (FIFO).
    store_slots: Arc<tokio::sync::Semaphore>,
}

/// Store calls allowed at once ([`AppState::store_slots`]): the SQLite backend pools
/// four readers beside its one writer.
const STORE_SLOTS: usize = 6;

impl AppState {
    /// Runs a store call on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> agentstore::Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        let _slot = self
            .store_slots
            .acquire()
            .await
            .map_err(|_| ApiError::new("unavailable", "shutting down"))?;
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "store call panicked");
                Err(ApiError::new("internal", "internal error"))
            }
        }
    }
}

/// A server: its router, and the handle that flips readiness at shutdown.
pub struct Server {
    router: Router,
    store: Arc<Store>,
    shared: Arc<shared::Shared>,
    sweep_interval: Option<std::time::Duration>,
    ready: Arc<AtomicBool>,
    /// Ends MCP sessions at shutdown, which would otherwise hold it open.
    mcp_cancel: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Builds the server around an open store.
    pub fn new(store: Arc<Store>, opts: &ServerOptions) -> Self {
        let (v1, openapi) = routes::api().finish();
        let ready = Arc::new(AtomicBool::new(true));
        let metrics = Arc::new(metrics::Metrics::new());
        let flush_store = store.clone();
        let shared = Arc::new(shared::Shared::new(
            opts,
            metrics.clone(),
            Box::new(move || flush_store.clear_embedding_cache()),
        ));
        let state = AppState {
            store: store.clone(),
            shared: shared.clone(),
            metrics,
            openapi: Arc::new(openapi),
            ready: ready.clone(),
            store_slots: Arc::new(tokio::sync::Semaphore::new(STORE_SLOTS)),
        };
        let v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
        let mcp_cancel = tokio_util::sync::CancellationToken::new();
        let mcp = mcp_service(&state, opts, mcp_cancel.child_token()).layer(
            axum::middleware::from_fn_with_state(state.clone(), auth::authenticate),
        );
        let router = Router::new()
            .route("/v1/openapi.json", get(openapi_doc))
            .merge(v1)
            .merge(mcp)
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::scrape))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(opts.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                metrics::track,
            ))
            .with_state(state);
        Server {
            router,
            store,
            shared,
            sweep_interval: opts.sweep_interval,
            ready,
            mcp_cancel,
        }
    }

    /// The router, e.g. to serve it on a listener of one's own. Served that way, the
    /// server keeps to its own state: Redis ([`ServerOptions::redis_url`]) is connected
    /// to and watched by [`Server::serve`]. The audit context records the caller's
    /// address only when the router is served with connection info
    /// (`into_make_service_with_connect_info::<SocketAddr>`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The OpenAPI document this server serves.
    pub fn openapi() -> Value {
        routes::api().finish().1
    }

    /// Serves until `shutdown` completes, then stops accepting connections and waits for
    /// the requests in flight: a write that has begun is finished and answered.
    ///
    /// The store's search indexes are warmed in the background meanwhile
    /// ([`Store::warm`]); requests are answered from the start, searches by the slower
    /// fallbacks until the indexes are ready. Redis, when configured, is connected to and
    /// watched in the background too; the server serves whether or not it answers.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match store.warm() {
                Ok(()) => tracing::info!(elapsed = ?started.elapsed(), "search indexes warmed"),
                // A search retries what failed here and reports it to its caller.
                Err(e) => tracing::warn!(error = %e, "warming the search indexes failed"),
            }
        });
        let sweeper = self
            .sweep_interval
            .map(|every| tokio::spawn(sweep_every(self.store.clone(), self.shared.clone(), every)));
        let shared_tasks = self.shared.start();
        let ready = self.ready.clone();
        let mcp_cancel = self.mcp_cancel.clone();
        // Connection info gives the audit context the peer's address.
        let service = self
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                ready.store(false, Ordering::SeqCst);
                mcp_cancel.cancel();
                tracing::info!("shutting down: finishing requests in flight");
            })
            .await;
        if let Some(s) = sweeper {
            s.abort();
        }
        for t in shared_tasks {
            t.abort();
        }
        served
    }
}

/// The retention sweeper: every `every`, the expired records and those past their
/// tenant's retention rules are removed (`Store::sweep_all`), so a server left running
/// keeps its promises without a cron job. The first sweep runs one interval after start.
async fn sweep_every(store: Arc<Store>, shared: Arc<shared::Shared>, every: std::time::Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.sweep_all("agentstore:sweeper")).await {
            Ok(Ok(r)) if r.removed() > 0 => {
                tracing::info!(
                    sessions = r.sessions,
                    events = r.events,
                    memories = r.memories,
                    documents = r.documents,
                    usage = r.usage,
                    metric_points = r.metric_points,
                    kv = r.kv,
                    "retention sweep"
                );
                shared.embeddings_flushed().await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "retention sweep failed"),
            Err(e) => tracing::error!(error = %e, "retention sweep panicked"),
        }
    }
}

/// `/mcp`: the MCP tools over streamable HTTP. Stateless (each POST stands alone, JSON
/// responses), so no session outlives its request and any server of a group can answer.
fn mcp_service(
    state: &AppState,
    opts: &ServerOptions,
    cancel: tokio_util::sync::CancellationToken,
) -> Router<AppState> {
    let (store, slots) = (state.store.clone(), state.store_slots.clone());
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let service: StreamableHttpService<mcp::McpTools, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(mcp::McpTools::http(store.clone(), slots.clone())),
            Default::default(),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_sse_keep_alive(None)
                .with_allowed_hosts(opts.mcp_allowed_hosts.clone())
                .with_cancellation_token(cancel),
        );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(mcp_error_bodies))
}

/// The MCP transport refuses some requests (a `Host` not allowed, a missing `Accept`)
/// with plain-text bodies; they become the API's `{code, message}` like every other
/// error. Its JSON-RPC answers, errors included, pass untouched.
async fn mcp_error_bodies(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || json {
        return resp;
    }
    // These bodies are one short sentence; a longer one is cut rather than buffered.
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "invalid_input",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_owned()
    } else if text.contains("Host header") {
        format!("{text}: it must be one of the server's mcp_allowed_hosts")
    } else {
        text
    };
    error::ApiError::new(code, message).into_response()
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn openapi_doc(State(state): State<AppState>) -> Response {
    axum::Json(state.openapi.as_ref().clone()).into_response()
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// Ready when not shutting down and the store answers a read.
async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if !state.ready.load(Ordering::SeqCst) {
        return Err(ApiError::new("unavailable", "shutting down"));
    }
    state.run(|s| s.list_tenants().map(|_| ())).await?;
    Ok(axum::Json(serde_json::json!({"status": "ready"})).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new("not_found", "no such endpoint; see /v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new("method_not_allowed", "method not allowed on this endpoint")
}
