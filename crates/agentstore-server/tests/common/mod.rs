//! A real server on a free loopback port over a real SQLite store, and a plain HTTP
//! client for it.

#![allow(dead_code)]

use std::sync::Arc;
use std::thread::JoinHandle;

use agentstore::{KeyScope, Scope, Store};
use agentstore_server::{Server, ServerOptions};
use agentstore_sqlite::OpenOptions;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestServer {
    pub base: String,
    pub store: Arc<Store>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
    pub dir: tempfile::TempDir,
}

pub fn start() -> TestServer {
    start_with(ServerOptions {
        rate_per_second: 0.0,
        ..ServerOptions::default()
    })
}

pub fn start_with(opts: ServerOptions) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(agentstore_sqlite::open(&OpenOptions::new(dir.path()).create()).unwrap());
    serve(store, dir, opts)
}

/// Serves an already open store.
pub fn serve(store: Arc<Store>, dir: tempfile::TempDir, opts: ServerOptions) -> TestServer {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let s = store.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            Server::new(s, &opts)
                .serve(listener, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    TestServer {
        base: format!("http://{addr}"),
        store,
        shutdown: Some(stop_tx),
        thread: Some(thread),
        agent,
        dir,
    }
}

impl TestServer {
    /// A tenant (created if missing) and a key for it with `scopes`.
    pub fn key(&self, tenant: &str, scopes: &[KeyScope]) -> String {
        let _ = self.store.ensure_tenant("test", tenant);
        self.store
            .create_api_key(&Scope::new(tenant, "test"), "test key", scopes, None)
            .unwrap()
            .secret
    }

    pub fn admin(&self, tenant: &str) -> String {
        self.key(tenant, &[KeyScope::Admin])
    }

    /// A request; `body` is sent as JSON text exactly as given.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, Response) {
        self.try_raw(method, path, key, body).unwrap()
    }

    /// [`TestServer::raw`], or the transport error. A server that answers before
    /// reading a whole body (413) may close the connection while the client still
    /// sends, and the client then sees the reset instead of the answer.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Result<(u16, Value, Response), ureq::Error> {
        self.try_raw_on(&self.agent, method, path, key, body)
    }

    /// [`TestServer::try_raw`] on a connection of its own. For requests the server may
    /// answer before reading their body (413): it then closes the connection, and a
    /// pooled one would hand that dead connection to a later request.
    pub fn try_raw_unpooled(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Result<(u16, Value, Response), ureq::Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .build()
            .into();
        self.try_raw_on(&agent, method, path, key, body)
    }

    fn try_raw_on(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Result<(u16, Value, Response), ureq::Error> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let result = match body {
            Some(b) => agent.run(
                req.header("content-type", "application/json")
                    .body(b)
                    .unwrap(),
            ),
            None => agent.run(req.body(()).unwrap()),
        };
        let mut resp = result?;
        let status = resp.status().as_u16();
        let headers = Response {
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request_id: resp
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            content_type: resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, json, headers))
    }

    pub fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let (s, v, _) = self.raw(method, path, Some(key), body.map(|b| b.to_string()));
        (s, v)
    }

    /// A call that must succeed with `status`; returns the body.
    pub fn ok(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (s, v) = self.call(method, path, key, body);
        assert_eq!(s, status, "{method} {path}: {v}");
        v
    }

    /// Stops the server and waits for it (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Response {
    pub retry_after: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<no code>")
}
