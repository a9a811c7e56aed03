//! API keys on requests, and the per-key rate limit (this server's own buckets here;
//! the group's in Redis through [`crate::shared`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agentstore::{ApiKey, Scope};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller of a request under /v1.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The request's key.
    pub key: ApiKey,
    /// The request's id (also in the `x-request-id` response header).
    pub request_id: String,
    /// The IP address of the connection's peer (a proxy's, behind one). None when the
    /// router is served without connection info.
    pub remote_addr: Option<String>,
    /// The `User-Agent` header, cleaned by [`user_agent`].
    pub user_agent: Option<String>,
}

impl Caller {
    /// The store scope of this request: the key's tenant, the key as the audit actor,
    /// and the request id, key name, peer address and user agent as audit context.
    pub fn scope(&self) -> Scope {
        let mut context =
            json!({"request_id": self.request_id, "via": "http", "key_name": self.key.name});
        if let Some(addr) = &self.remote_addr {
            context["remote_addr"] = json!(addr);
        }
        if let Some(agent) = &self.user_agent {
            context["user_agent"] = json!(agent);
        }
        Scope::new(&self.key.tenant_id, format!("api_key:{}", self.key.id)).with_context(context)
    }
}

/// Longest user agent kept in the audit context, in characters.
const MAX_USER_AGENT_CHARS: usize = 256;

/// The request's `User-Agent`, as the audit log keeps it: any client can send any bytes
/// there, so it is cut to [`MAX_USER_AGENT_CHARS`] and stripped of control characters
/// (which could forge lines in a log or terminal that shows it). None when absent or
/// empty.
fn user_agent(req: &Request) -> Option<String> {
    let raw = req.headers().get(USER_AGENT)?;
    let text: String = String::from_utf8_lossy(raw.as_bytes())
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new("unauthorized", "an API key is required"))
    }
}

fn bearer(req: &Request) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'",
        )
    };
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, secret) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || secret.trim().is_empty() {
        return Err(missing());
    }
    Ok(secret.trim().to_owned())
}

/// Authenticates every request under /v1 (except the OpenAPI document), then charges the
/// key's rate limit.
///
/// Keys are cached in process by the secret's hash, since the store lookup would
/// otherwise be every request's first query. So a revoked key is not refused everywhere
/// on its next request, but:
/// - through the server that revoked it, on its next request;
/// - through the other servers sharing its Redis, as soon as the announcement arrives
///   (a millisecond);
/// - through a server without Redis, or cut off from it, within 1 s;
/// - through a server sharing a Redis, after a revocation nobody announced (the CLI on
///   the store), within 10 s.
///
/// An expired key is refused on its next request everywhere. [`crate::shared`] explains
/// the bounds.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let secret = bearer(&req)?;
    let lookup = {
        let (state, secret) = (state.clone(), secret.clone());
        move || async move { state.run(move |s| s.authenticate(&secret)).await }
    };
    let key = state
        .shared
        .api_key(&secret, lookup)
        .await?
        .ok_or_else(|| ApiError::new("unauthorized", "unknown, revoked or expired API key"))?;
    if let Err(wait) = state.shared.take(&key.id).await {
        state.metrics.rate_limited.inc();
        return Err(ApiError::new(
            "rate_limited",
            format!(
                "rate limit of this key exceeded; retry in {} ms",
                wait.as_millis()
            ),
        )
        .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64));
    }
    let request_id = req
        .extensions()
        .get::<crate::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    // Only the peer: a forwarded-for header is whatever the client wrote unless a trusted
    // proxy set it, and the server cannot tell which.
    let remote_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = user_agent(&req);
    req.extensions_mut().insert(Caller {
        key,
        request_id,
        remote_addr,
        user_agent,
    });
    Ok(next.run(req).await)
}

/// Token buckets per key: `burst` requests at once, refilled at `per_second`.
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(600);

impl RateLimiter {
    /// `per_second` of 0 turns limiting off.
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        RateLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `key`'s bucket, or says how long until one is there.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.at) < IDLE);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let l = RateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert!(l.take("k").is_ok());
        }
        let wait = l.take("k").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another key has its own bucket.
        assert!(l.take("other").is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.take("k").is_ok());
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let l = RateLimiter::new(0.0, 1);
        for _ in 0..1000 {
            assert!(l.take("k").is_ok());
        }
    }
}
