//! What several `agentstore serve` processes over one store share through an optional
//! Redis, and the in-process cache of API keys.
//!
//! # Redis, and doing without it
//!
//! With [`ServerOptions::redis_url`](crate::ServerOptions::redis_url) set, each key's
//! rate limit is one token bucket in Redis for all servers instead of one per server, and
//! a key revoked through one server stops working on the others at once. Redis is an
//! optimisation of a group, never a dependency of a request:
//!
//! - Every Redis call has a [`CALL_TIMEOUT`] and goes through a circuit breaker. The first
//!   error or timeout opens it (`redis_up` 0): from then on the server answers from its
//!   own state without asking Redis, so an outage costs each request nothing. A request
//!   that met the failure is answered from local state too; none fails because of Redis.
//! - A probe pings Redis every [`PROBE_EVERY`] and closes the breaker when it answers
//!   (`redis_up` 1). The probe is also what notices an idle server's Redis going away.
//! - Redis unreachable at start is the same as Redis going away: the server starts with
//!   the breaker open and closes it on the first answered ping.
//! - While the breaker is open each server limits each key with its own bucket, so a
//!   group of N servers lets a key make up to N times its rate during an outage.
//!
//! # Rate limits
//!
//! The bucket is a Redis hash updated by one Lua script ([`BUCKET_SCRIPT`]): Redis runs
//! scripts one at a time, so two servers charging one key cannot both spend its last
//! token, and the script reads Redis's own clock (`TIME`) so servers whose clocks
//! disagree still refill the bucket alike. Same semantics and parameters as each
//! server's own buckets (`auth.rs`). An idle bucket expires once it would be full again.
//!
//! # The API-key cache
//!
//! Every request looks its key up by the secret's hash; a small in-process cache (moka,
//! at most [`KEY_CACHE_CAPACITY`] keys) answers repeats without a store call. Only keys
//! found are cached (a flood of unknown secrets cannot fill it), and a cached key past
//! its `expires_at` is looked up again. Revocation still takes effect:
//!
//! - Revoking through a server drops the key from its own cache before the request is
//!   answered, and publishes the key's id on [`REVOKED_CHANNEL`].
//! - Every server subscribes to that channel and drops the key on each message. The
//!   subscription is reopened whenever Redis comes back.
//! - A cached key lives [`KEY_TTL_SUBSCRIBED`] while the server is subscribed, and at
//!   most [`KEY_TTL_LOCAL`] otherwise (no Redis configured, Redis down, or not yet
//!   subscribed). Losing the subscription drops every cached key, since revocations
//!   published meanwhile are missed.
//! - So a revocation made through any server of a group takes effect everywhere at once
//!   while Redis is up, and within [`KEY_TTL_LOCAL`] on a server that is cut off from
//!   it. A revocation that is not published — made with `agentstore keys revoke` straight
//!   on the store without [`announce_key_revoked`], or through a server that cannot reach
//!   Redis while others can — takes up to [`KEY_TTL_SUBSCRIBED`].
//! - A lookup that raced a revocation (read the key before, would cache it after) does
//!   not cache it: each invalidation bumps a generation the insert checks.
//!
//! # Embedding caches after an erasure
//!
//! Each server caches the vectors of texts it embedded (by text hash). An erasure or a
//! sweep empties the cache of the server that ran it (`Store::erase_subject`); through
//! Redis it also asks every other server to empty its own ([`FLUSH_CHANNEL`]), so no
//! vector of an erased subject's text outlives the erasure in any server's memory. A
//! server (re)subscribing empties its cache too: requests published while it was cut
//! off are lost. Vectors are not shared through Redis on purpose: a shared cache would
//! be one more copy of derived personal data to find and empty on every erasure.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentstore::ApiKey;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use crate::ServerOptions;
use crate::auth::RateLimiter;
use crate::metrics::Metrics;

/// The longest a request waits on Redis before answering from local state. Redis answers
/// in well under a millisecond; waiting longer only makes an outage slower to notice.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);

/// How often Redis is pinged, to notice it went away or came back.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The probe may take longer than a request's call: a slow answer from a busy machine is
/// no reason to give up on Redis, only a missing one.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Connecting (the command connection after an outage, the subscription).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest life of a cached key when revocations from other servers may be missed.
pub const KEY_TTL_LOCAL: Duration = Duration::from_secs(1);

/// Life of a cached key while revocations arrive over pub/sub: the bound for a
/// revocation that is never published (see the module docs).
pub const KEY_TTL_SUBSCRIBED: Duration = Duration::from_secs(10);

/// Keys cached at most; a key is a few hundred bytes.
pub const KEY_CACHE_CAPACITY: u64 = 10_000;

/// The pub/sub channel of revoked keys; each message is one key id.
pub const REVOKED_CHANNEL: &str = "agentstore:keys:revoked";

/// The pub/sub channel asking every server to empty its embedding cache (after an
/// erasure or a sweep through one of them).
pub const FLUSH_CHANNEL: &str = "agentstore:embeddings:flush";

/// Prefix of the rate-limit buckets' Redis keys (the key id follows).
const BUCKET_PREFIX: &str = "agentstore:rate:";

/// The token bucket in Redis. `KEYS[1]`: the bucket; `ARGV[1]`: tokens per second
/// (> 0); `ARGV[2]`: capacity. Returns `{1, 0}` when a token was taken, else `{0, ms until one}`.
///
/// `at` keeps microseconds with `%.6f` (Lua's own number formatting keeps 14 digits,
/// too few for seconds since 1970 with a fraction). Redis before 5 replicates scripts by
/// their text, which `TIME` would make differ on replicas, hence `replicate_commands`.
pub const BUCKET_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil(burst / rate * 1000) + 1000, 86400000))
return {taken, wait}
";

/// Publishes a revocation made outside the servers (the CLI on the store), so servers
/// sharing `redis_url` drop the key from their caches at once rather than within
/// [`KEY_TTL_SUBSCRIBED`]. Blocking, bounded by a one-second timeout.
pub fn announce_key_revoked(redis_url: &str, key_id: &str) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(redis_url)?;
    let mut con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    con.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    redis::cmd("PUBLISH")
        .arg(REVOKED_CHANNEL)
        .arg(key_id)
        .exec(&mut con)
}

/// Checks a Redis URL's form without connecting (for validating configuration).
pub fn check_redis_url(redis_url: &str) -> Result<(), redis::RedisError> {
    redis::Client::open(redis_url).map(|_| ())
}

/// The server's shared state: rate limits and the key cache, through Redis when it is
/// configured and up.
pub(crate) struct Shared {
    redis: Option<Redis>,
    keys: KeyCache,
    local: RateLimiter,
    rate_per_second: f64,
    burst: u32,
    metrics: Arc<Metrics>,
    /// Empties this server's embedding cache.
    flush: Box<dyn Fn() + Send + Sync>,
}

struct Redis {
    client: redis::Client,
    /// Made by [`Shared::start`]: the connection manager needs a runtime to exist in,
    /// and [`crate::Server::new`] may run outside one.
    conn: OnceLock<ConnectionManager>,
    /// The breaker: true while Redis answers. Read on every request, hence an atomic
    /// beside the channel that wakes the subscriber.
    up: AtomicBool,
    up_tx: watch::Sender<bool>,
    /// Whether revocations from other servers arrive; decides a cached key's life.
    subscribed: AtomicBool,
    bucket: redis::Script,
}

impl Shared {
    pub(crate) fn new(
        opts: &ServerOptions,
        metrics: Arc<Metrics>,
        flush: Box<dyn Fn() + Send + Sync>,
    ) -> Shared {
        let redis = opts
            .redis_url
            .as_deref()
            .and_then(|url| match redis::Client::open(url) {
                Ok(client) => Some(Redis {
                    client,
                    conn: OnceLock::new(),
                    up: AtomicBool::new(false),
                    up_tx: watch::Sender::new(false),
                    subscribed: AtomicBool::new(false),
                    bucket: redis::Script::new(BUCKET_SCRIPT),
                }),
                // Serving without the group's shared state beats not serving; the
                // error and `redis_up` 0 say so.
                Err(e) => {
                    tracing::error!(error = %e, "invalid redis_url: serving without Redis");
                    None
                }
            });
        Shared {
            redis,
            keys: KeyCache::new(),
            local: RateLimiter::new(opts.rate_per_second, opts.rate_burst),
            rate_per_second: opts.rate_per_second,
            burst: opts.rate_burst.max(1),
            metrics,
            flush,
        }
    }

    /// Connects (lazily: an unreachable Redis does not hold up the start) and spawns the
    /// probe and the subscriber; the caller aborts them at shutdown.
    pub(crate) fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(r) = &self.redis else {
            return Vec::new();
        };
        // The manager's own retries would keep a request waiting on a dead Redis; the
        // probe retries instead, one connection attempt per ping.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        match ConnectionManager::new_lazy_with_config(r.client.clone(), config) {
            Ok(conn) => {
                let _ = r.conn.set(conn);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the Redis connection: serving without Redis");
                return Vec::new();
            }
        }
        vec![
            tokio::spawn(probe(self.clone())),
            tokio::spawn(subscribe(self.clone())),
        ]
    }

    /// Takes one token of the key's bucket, or says how long until one is there: the
    /// group's bucket in Redis, or this server's own while Redis is down.
    pub(crate) async fn take(&self, key_id: &str) -> Result<(), Duration> {
        if self.rate_per_second <= 0.0 {
            return Ok(());
        }
        if let Some(r) = &self.redis {
            let bucket = format!("{BUCKET_PREFIX}{key_id}");
            let (rate, burst) = (self.rate_per_second, self.burst);
            let answer = r
                .call(&self.metrics, "rate limit", move |mut c| async move {
                    r.bucket
                        .key(bucket)
                        .arg(rate)
                        .arg(burst)
                        .invoke_async::<(u8, u64)>(&mut c)
                        .await
                })
                .await;
            match answer {
                Some((1, _)) => return Ok(()),
                Some((_, wait_ms)) => return Err(Duration::from_millis(wait_ms.max(1))),
                None => {
                    self.metrics.redis_fallbacks.inc();
                }
            }
        }
        self.local.take(key_id)
    }

    /// The live key of a secret: from the cache, else from `lookup` (the store), which
    /// is then cached.
    pub(crate) async fn api_key<E, Fut>(
        &self,
        secret: &str,
        lookup: impl FnOnce() -> Fut,
    ) -> Result<Option<ApiKey>, E>
    where
        Fut: Future<Output = Result<Option<ApiKey>, E>>,
    {
        let hash = agentstore::codec::sha256_hex(secret.as_bytes());
        let now = agentstore::time::now();
        if let Some(key) = self.keys.get(&hash)
            && key.expires_at.is_none_or(|e| e > now)
        {
            self.metrics.key_cache_hits.inc();
            return Ok(Some(key));
        }
        self.metrics.key_cache_misses.inc();
        let ticket = self.keys.ticket();
        let key = lookup().await?;
        if let Some(k) = &key {
            self.keys.insert(ticket, hash, k.clone(), || {
                let subscribed = self
                    .redis
                    .as_ref()
                    .is_some_and(|r| r.subscribed.load(Ordering::SeqCst));
                if subscribed {
                    KEY_TTL_SUBSCRIBED
                } else {
                    KEY_TTL_LOCAL
                }
            });
        }
        Ok(key)
    }

    /// A key was revoked through this server: dropped from its cache now, and from the
    /// others' through pub/sub. Never fails: unpublished, the others' caches forget the
    /// key within their TTL.
    pub(crate) async fn key_revoked(&self, key_id: &str) {
        self.keys.invalidate_id(key_id);
        let Some(r) = &self.redis else {
            return;
        };
        let id = key_id.to_owned();
        let published = r
            .call(
                &self.metrics,
                "publish revocation",
                move |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(REVOKED_CHANNEL)
                        .arg(id)
                        .query_async::<i64>(&mut c)
                        .await
                },
            )
            .await;
        if published.is_none() {
            self.metrics.redis_fallbacks.inc();
            tracing::warn!(
                key_id,
                "revocation not published (Redis down): other servers drop the key when their cached copy expires"
            );
        }
    }
}

impl Shared {
    /// An erasure or a sweep removed records through this server (whose own cache the
    /// store has emptied): every other server of the group is asked to empty its
    /// embedding cache. Never fails; unpublished, a server that was cut off empties its
    /// cache when it subscribes again, and one that was not keeps vectors it will never
    /// be asked for by the erased text's owner again (logged).
    pub(crate) async fn embeddings_flushed(&self) {
        let Some(r) = &self.redis else {
            return;
        };
        let published = r
            .call(
                &self.metrics,
                "publish cache flush",
                move |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(FLUSH_CHANNEL)
                        .arg("erased")
                        .query_async::<i64>(&mut c)
                        .await
                },
            )
            .await;
        if published.is_none() {
            self.metrics.redis_fallbacks.inc();
            tracing::warn!(
                "embedding-cache flush not published (Redis down): other servers keep their cached vectors until they reconnect"
            );
        }
    }
}

impl Redis {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// One call through the breaker: None when it is open, and when the call fails or
    /// times out (which opens it).
    async fn call<T, Fut>(
        &self,
        metrics: &Metrics,
        what: &str,
        f: impl FnOnce(ConnectionManager) -> Fut,
    ) -> Option<T>
    where
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        let conn = self.conn.get()?.clone();
        let error = match tokio::time::timeout(CALL_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
        };
        metrics.redis_errors.inc();
        if self.set_up(false, metrics) {
            tracing::warn!(%error, what, "Redis failed: serving from local state until it answers again");
        }
        None
    }

    /// Sets the breaker; true if that changed it.
    fn set_up(&self, up: bool, metrics: &Metrics) -> bool {
        if self.up.swap(up, Ordering::SeqCst) == up {
            return false;
        }
        metrics.redis_up.set(i64::from(up));
        self.up_tx.send_replace(up);
        true
    }
}

/// Pings Redis every [`PROBE_EVERY`]: closes the breaker when it answers, opens it when
/// it does not (a server without traffic notices an outage too).
async fn probe(shared: Arc<Shared>) {
    let (Some(r), m) = (&shared.redis, &shared.metrics) else {
        return;
    };
    let Some(conn) = r.conn.get() else {
        return;
    };
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut c = conn.clone();
        let pinged = tokio::time::timeout(
            PROBE_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await;
        match pinged {
            Ok(Ok(_)) => {
                if r.set_up(true, m) {
                    tracing::info!("Redis answers: rate limits and revocations shared again");
                }
            }
            // While down, failed pings are the expected state, not new errors.
            Ok(Err(_)) | Err(_) if !r.is_up() => {}
            Ok(Err(e)) => {
                m.redis_errors.inc();
                r.set_up(false, m);
                tracing::warn!(error = %e, "Redis ping failed: serving from local state");
            }
            Err(_) => {
                m.redis_errors.inc();
                r.set_up(false, m);
                tracing::warn!("Redis ping unanswered: serving from local state");
            }
        }
    }
}

/// Holds the subscription to [`REVOKED_CHANNEL`] while the breaker is closed, and
/// reopens it after each outage.
async fn subscribe(shared: Arc<Shared>) {
    let (Some(r), keys) = (&shared.redis, &shared.keys) else {
        return;
    };
    let mut up = r.up_tx.subscribe();
    loop {
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut ps = r.client.get_async_pubsub().await?;
            ps.subscribe(&[REVOKED_CHANNEL, FLUSH_CHANNEL]).await?;
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        let ps = match opened {
            Ok(Ok(ps)) => ps,
            failed => {
                shared.metrics.redis_errors.inc();
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(%error, "cannot subscribe to key revocations; retrying");
                tokio::time::sleep(PROBE_EVERY).await;
                continue;
            }
        };
        // Keys looked up before now may have been revoked before the subscription
        // began: they must not get the long life.
        r.subscribed.store(true, Ordering::SeqCst);
        keys.clear();
        // Flush requests published while unsubscribed were missed.
        (shared.flush)();
        let mut messages = ps.into_on_message();
        let ended = loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) if msg.get_channel_name() == FLUSH_CHANNEL => (shared.flush)(),
                    Some(msg) => match msg.get_payload::<String>() {
                        Ok(id) => keys.invalidate_id(&id),
                        // Not a key id (someone else's message): forget everything
                        // rather than guess.
                        Err(_) => keys.clear(),
                    },
                    None => break "the subscription connection closed",
                },
                _ = up.wait_for(|up| !*up) => break "Redis is down",
            }
        };
        r.subscribed.store(false, Ordering::SeqCst);
        keys.clear();
        tracing::info!(
            reason = ended,
            "key revocations from other servers no longer arrive: cached keys live at most {KEY_TTL_LOCAL:?}"
        );
    }
}

/// The key cache: by the secret's hash, each entry with its own life.
struct KeyCache {
    entries: moka::sync::Cache<String, CachedKey>,
    /// Bumped by every invalidation; a lookup caches its answer only if none happened
    /// since it began, so a key read just before its revocation is not cached after it.
    generation: Mutex<u64>,
}

#[derive(Clone)]
struct CachedKey {
    key: ApiKey,
    ttl: Duration,
}

struct EntryTtl;

impl moka::Expiry<String, CachedKey> for EntryTtl {
    fn expire_after_create(&self, _: &String, v: &CachedKey, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &CachedKey,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

impl KeyCache {
    fn new() -> Self {
        KeyCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .expire_after(EntryTtl)
                .support_invalidation_closures()
                .build(),
            generation: Mutex::new(0),
        }
    }

    fn get(&self, hash: &str) -> Option<ApiKey> {
        self.entries.get(hash).map(|c| c.key)
    }

    fn ticket(&self) -> u64 {
        *self.generation.lock()
    }

    /// Caches `key` unless an invalidation happened since `ticket`; `ttl` is decided
    /// under the same lock, so a subscription lost meanwhile is seen.
    fn insert(&self, ticket: u64, hash: String, key: ApiKey, ttl: impl FnOnce() -> Duration) {
        let generation = self.generation.lock();
        if *generation == ticket {
            self.entries.insert(hash, CachedKey { key, ttl: ttl() });
        }
    }

    fn invalidate_id(&self, id: &str) {
        let mut generation = self.generation.lock();
        *generation += 1;
        let id = id.to_owned();
        // Cannot fail: the cache is built with invalidation closures.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, c| c.key.id == id);
    }

    fn clear(&self) {
        let mut generation = self.generation.lock();
        *generation += 1;
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            tenant_id: "t".into(),
            name: "k".into(),
            prefix: "ask_".into(),
            scopes: vec![agentstore::KeyScope::Read],
            created_at: agentstore::time::now(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_cached() {
        let c = KeyCache::new();
        let ticket = c.ticket();
        c.invalidate_id("k1");
        c.insert(ticket, "h1".into(), key("k1"), || KEY_TTL_LOCAL);
        assert!(c.get("h1").is_none());
        let ticket = c.ticket();
        c.insert(ticket, "h1".into(), key("k1"), || KEY_TTL_LOCAL);
        assert_eq!(c.get("h1").unwrap().id, "k1");
        c.invalidate_id("k1");
        assert!(c.get("h1").is_none());
    }

    #[test]
    fn entries_live_their_own_ttl() {
        let c = KeyCache::new();
        c.insert(c.ticket(), "short".into(), key("a"), || {
            Duration::from_millis(50)
        });
        c.insert(c.ticket(), "long".into(), key("b"), || KEY_TTL_SUBSCRIBED);
        std::thread::sleep(Duration::from_millis(120));
        assert!(c.get("short").is_none());
        assert!(c.get("long").is_some());
        c.clear();
        assert!(c.get("long").is_none());
    }
}
