//! Prometheus metrics: requests, latency, rate limiting, store sizes, the embedding
//! cache, the API-key cache and the shared Redis.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::{AppState, RequestId};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntityLabels {
    entity: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    pub(crate) rate_limited: Counter,
    rows: Family<EntityLabels, Gauge>,
    bytes: Family<EntityLabels, Gauge>,
    cache_hits: Gauge,
    cache_misses: Gauge,
    /// 1 while the shared Redis answers (the breaker is closed); 0 when it does not or
    /// none is configured.
    pub(crate) redis_up: Gauge,
    pub(crate) redis_errors: Counter,
    /// Requests that wanted Redis and were served from this server's own state.
    pub(crate) redis_fallbacks: Counter,
    pub(crate) key_cache_hits: Counter,
    pub(crate) key_cache_misses: Counter,
    key_cache_hit_ratio: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("agentstore");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let in_flight = Gauge::default();
        let rate_limited = Counter::default();
        let rows = Family::<EntityLabels, Gauge>::default();
        let bytes = Family::<EntityLabels, Gauge>::default();
        let cache_hits = Gauge::default();
        let cache_misses = Gauge::default();
        let redis_up = Gauge::default();
        let redis_errors = Counter::default();
        let redis_fallbacks = Counter::default();
        let key_cache_hits = Counter::default();
        let key_cache_misses = Counter::default();
        let key_cache_hit_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being served",
            in_flight.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a key's rate limit",
            rate_limited.clone(),
        );
        registry.register("store_rows", "Rows per entity", rows.clone());
        registry.register("store_bytes", "Bytes on disk per entity", bytes.clone());
        registry.register(
            "embedding_cache_hits",
            "Embeddings served from the cache since start",
            cache_hits.clone(),
        );
        registry.register(
            "embedding_cache_misses",
            "Embeddings computed since start",
            cache_misses.clone(),
        );
        registry.register(
            "redis_up",
            "1 while the shared Redis answers, 0 while the server does without it",
            redis_up.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out",
            redis_errors.clone(),
        );
        registry.register(
            "redis_fallbacks",
            "Requests served from this server's own state because Redis was down",
            redis_fallbacks.clone(),
        );
        registry.register(
            "api_key_cache_hits",
            "API keys found in the in-process key cache",
            key_cache_hits.clone(),
        );
        registry.register(
            "api_key_cache_misses",
            "API keys looked up in the store",
            key_cache_misses.clone(),
        );
        registry.register(
            "api_key_cache_hit_ratio",
            "Share of API-key lookups answered by the cache since start",
            key_cache_hit_ratio.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            rate_limited,
            rows,
            bytes,
            cache_hits,
            cache_misses,
            redis_up,
            redis_errors,
            redis_fallbacks,
            key_cache_hits,
            key_cache_misses,
            key_cache_hit_ratio,
        }
    }
}

/// Counts and times every request, gives it an id, and logs it.
pub(crate) async fn track(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // A caller's own request id is kept when it is short and printable, so logs on both
    // sides can be joined; otherwise the server makes one.
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let m = &state.metrics;
    m.in_flight.inc();
    let mut resp = next.run(req).await;
    m.in_flight.dec();
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    m.requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(secs);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        target: "agentstore::http",
        request_id,
        method,
        route,
        status,
        latency_ms = secs * 1e3,
        "request"
    );
    resp
}

/// `GET /metrics`: the Prometheus text format. Store sizes are read at scrape time.
pub(crate) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.run(|s| s.stats()).await?;
    let m: Arc<Metrics> = state.metrics.clone();
    for e in &stats.entities {
        let labels = EntityLabels {
            entity: e.entity.clone(),
        };
        m.rows.get_or_create(&labels).set(e.rows as i64);
        m.bytes.get_or_create(&labels).set(e.bytes as i64);
    }
    if let Some(c) = state.store.embedder().and_then(|e| e.cache_stats()) {
        m.cache_hits.set(c.hits as i64);
        m.cache_misses.set(c.misses as i64);
    }
    let (hits, misses) = (m.key_cache_hits.get(), m.key_cache_misses.get());
    if hits + misses > 0 {
        m.key_cache_hit_ratio
            .set(hits as f64 / (hits + misses) as f64);
    }
    let mut text = String::new();
    encode(&mut text, &m.registry)
        .map_err(|e| ApiError::new("internal", format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
