//! The OpenAI-compatible embedder against a real HTTP/1.1 server on 127.0.0.1, started by
//! each test: what it sends, how it reads answers, and every failure it must report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use agentstore_embed::{EmbedError, Embedder, OpenAiCompatible, OpenAiOptions};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers: status, body, and a delay before answering.
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A tiny HTTP/1.1 server: one request per connection (it answers `Connection: close`),
/// handled in order on one thread. Stops when dropped.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(respond: impl Fn(&Seen) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    // A client that gave up (timeout test) may have closed the socket.
                    let Some(request) = read_request(&stream) else {
                        continue;
                    };
                    seen.lock().unwrap().push(request.clone());
                    let answer = respond(&request);
                    std::thread::sleep(answer.delay);
                    let _ = write_response(stream, &answer);
                }
            })
        };
        Server {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

fn write_response(mut stream: TcpStream, reply: &Reply) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    )?;
    stream.flush()
}

/// The vector the fake server gives a text: [length, first byte, 1, 0].
fn fake_vector(text: &str) -> Vec<f32> {
    vec![
        text.len() as f32,
        f32::from(text.bytes().next().unwrap_or(0)),
        1.0,
        0.0,
    ]
}

/// An OpenAI-style answer for the request's inputs, listed in reverse order with their
/// indices, as the protocol allows.
fn embeddings_reply(request: &Seen) -> Reply {
    let inputs = request.body["input"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_vector(t.as_str().unwrap())}))
        .collect();
    reply(
        200,
        json!({"object": "list", "data": data, "model": request.body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            .to_string(),
    )
}

/// How a test server answers each request.
type Responder = Box<dyn Fn(&Seen) -> Reply + Send>;

fn options(server: &Server) -> OpenAiOptions {
    OpenAiOptions::new(server.base_url(), "test-embed", 4)
}

#[test]
fn sends_model_and_inputs_in_batches_and_orders_answers_by_index() {
    let server = Server::start(embeddings_reply);
    let mut opts = options(&server);
    opts.api_key = Some("sk-test-123".into());
    opts.batch_size = 2;
    opts.base_url.push('/');
    let embedder = OpenAiCompatible::new(opts).unwrap();
    assert_eq!(embedder.url(), format!("{}/embeddings", server.base_url()));
    assert_eq!(embedder.model().dimension, 4);
    assert_eq!(embedder.model().id, "test-embed");

    let texts = ["alpha", "b", "gamma ray", "delta", "épsilon"];
    let vectors = embedder.embed(&texts).unwrap();
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t)).collect();
    assert_eq!(vectors, expected);

    let seen = server.seen();
    assert_eq!(seen.len(), 3, "5 inputs in batches of 2");
    for request in &seen {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/embeddings");
        assert_eq!(request.header("authorization"), Some("Bearer sk-test-123"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body["model"], "test-embed");
        assert!(request.body.get("dimensions").is_none());
    }
    assert_eq!(seen[0].body["input"], json!(["alpha", "b"]));
    assert_eq!(seen[2].body["input"], json!(["épsilon"]));
}

#[test]
fn no_key_no_authorization_and_optional_dimensions() {
    let server = Server::start(embeddings_reply);
    let mut opts = options(&server);
    opts.request_dimensions = true;
    let embedder = OpenAiCompatible::new(opts).unwrap();
    assert!(embedder.embed(&[]).unwrap().is_empty());
    assert!(server.seen().is_empty(), "no request for no input");

    assert_eq!(embedder.embed_one("x").unwrap(), fake_vector("x"));
    let seen = server.seen();
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].body["dimensions"], 4);
}

#[test]
fn http_errors_carry_status_and_body() {
    let server = Server::start(|_| {
        reply(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}).to_string(),
        )
    });
    let error = OpenAiCompatible::new(options(&server))
        .unwrap()
        .embed(&["a"])
        .unwrap_err();
    match &error {
        EmbedError::HttpStatus { status, body, url } => {
            assert_eq!(*status, 429);
            assert!(body.contains("Rate limit reached"), "{body}");
            assert!(url.ends_with("/v1/embeddings"));
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
    assert_eq!(error.code(), "http_status");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("HTTP 429"), "{error}");

    let long_body = "x".repeat(5000);
    let server = Server::start(move |_| reply(400, long_body.clone()));
    let error = OpenAiCompatible::new(options(&server))
        .unwrap()
        .embed(&["a"])
        .unwrap_err();
    match error {
        EmbedError::HttpStatus {
            status: 400,
            ref body,
            ..
        } => assert_eq!(body.len(), 512),
        ref other => panic!("expected HttpStatus 400, got {other:?}"),
    }
    assert!(!error.is_retryable(), "a bad request stays bad");
}

#[test]
fn malformed_answers_are_rejected() {
    let cases: Vec<(&str, Responder, &str)> = vec![
        (
            "not json",
            Box::new(|_: &Seen| reply(200, "<html>gateway</html>")),
            "bad_response",
        ),
        (
            "too few vectors",
            Box::new(|_: &Seen| {
                reply(
                    200,
                    json!({"data": [{"index": 0, "embedding": [1, 2, 3, 4]}]}).to_string(),
                )
            }),
            "bad_response",
        ),
        (
            "duplicate index",
            Box::new(|_: &Seen| {
                reply(200, json!({"data": [{"index": 1, "embedding": [1, 2, 3, 4]}, {"index": 1, "embedding": [1, 2, 3, 4]}]}).to_string())
            }),
            "bad_response",
        ),
        (
            "index out of range",
            Box::new(|_: &Seen| {
                reply(200, json!({"data": [{"index": 0, "embedding": [1, 2, 3, 4]}, {"index": 2, "embedding": [1, 2, 3, 4]}]}).to_string())
            }),
            "bad_response",
        ),
        (
            "wrong dimension",
            Box::new(|_: &Seen| {
                reply(200, json!({"data": [{"index": 0, "embedding": [1, 2, 3]}, {"index": 1, "embedding": [1, 2, 3]}]}).to_string())
            }),
            "dimension_mismatch",
        ),
    ];
    for (what, respond, code) in cases {
        let server = Server::start(respond);
        let error = OpenAiCompatible::new(options(&server))
            .unwrap()
            .embed(&["a", "b"])
            .unwrap_err();
        assert_eq!(error.code(), code, "{what}: {error}");
        assert!(!error.is_retryable(), "{what}");
    }

    // Without indices, answers are taken in order.
    let server = Server::start(|_| {
        reply(
            200,
            json!({"data": [{"embedding": [1, 0, 0, 0]}, {"embedding": [0, 1, 0, 0]}]}).to_string(),
        )
    });
    let vectors = OpenAiCompatible::new(options(&server))
        .unwrap()
        .embed(&["a", "b"])
        .unwrap();
    assert_eq!(
        vectors,
        vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]]
    );
}

#[test]
fn slow_and_absent_servers_fail_with_transport_errors() {
    let server = Server::start(|request| Reply {
        delay: Duration::from_millis(1500),
        ..embeddings_reply(request)
    });
    let mut opts = options(&server);
    opts.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let error = OpenAiCompatible::new(opts)
        .unwrap()
        .embed(&["a"])
        .unwrap_err();
    assert!(matches!(error, EmbedError::Timeout { .. }), "{error:?}");
    assert_eq!(error.code(), "timeout");
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "gave up on time"
    );

    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = OpenAiOptions::new(format!("http://127.0.0.1:{port}/v1"), "m", 4);
    let error = OpenAiCompatible::new(opts)
        .unwrap()
        .embed(&["a"])
        .unwrap_err();
    assert_eq!(error.code(), "transport_error", "{error}");
    assert!(error.is_retryable());
}

#[test]
fn bad_options_are_refused_and_the_key_is_never_printed() {
    for (url, model, dimension, batch) in [
        ("ftp://example.invalid/v1", "m", 4, 8),
        ("127.0.0.1:8080/v1", "m", 4, 8),
        ("http://127.0.0.1:8080/v1", "", 4, 8),
        ("http://127.0.0.1:8080/v1", "m", 0, 8),
        ("http://127.0.0.1:8080/v1", "m", 4, 0),
    ] {
        let mut opts = OpenAiOptions::new(url, model, dimension);
        opts.batch_size = batch;
        let error = OpenAiCompatible::new(opts).unwrap_err();
        assert_eq!(
            error.code(),
            "config_error",
            "{url} {model} {dimension} {batch}"
        );
    }
    let mut opts = OpenAiOptions::new("https://api.example.invalid/v1", "m", 4);
    opts.api_key = Some("sk-secret-value".into());
    assert!(!format!("{opts:?}").contains("sk-secret-value"));
    let embedder = OpenAiCompatible::new(opts).unwrap();
    assert!(!format!("{embedder:?}").contains("sk-secret-value"));
}
