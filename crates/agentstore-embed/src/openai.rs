//! Embeddings from any server that speaks the OpenAI `POST /embeddings` protocol (OpenAI,
//! Azure-style proxies, vLLM, llama.cpp server, Ollama's `/v1`, text-embeddings-inference).

use std::fmt;
use std::time::Duration;

use crate::{EmbedError, Embedder, ModelInfo, Result};

/// Largest response body read. A full batch of 2048 inputs × 3072 dimensions printed as
/// JSON is about 130 MB; anything beyond this is not an embeddings answer.
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Characters of an error response kept in [`EmbedError::HttpStatus`].
const BODY_EXCERPT_CHARS: usize = 512;

/// Options for [`OpenAiCompatible::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiOptions {
    /// API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`;
    /// `/embeddings` is appended.
    pub base_url: String,
    /// Model name sent in each request and recorded as [`ModelInfo::id`].
    pub model: String,
    /// Length of the vectors the model returns; every answer is checked against it.
    pub dimension: usize,
    /// Sent as `Authorization: Bearer …` when set. Never printed by `Debug`.
    pub api_key: Option<String>,
    /// Inputs per request (OpenAI accepts up to 2048; smaller batches fail more cheaply).
    pub batch_size: usize,
    /// Limit for one whole request, connection and body included.
    pub timeout: Duration,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
    /// Send `"dimensions": dimension` in the request, for models that can shorten their
    /// vectors (OpenAI's text-embedding-3 family). Off by default: other servers may
    /// reject the field.
    pub request_dimensions: bool,
    /// The model's token limit, if known, reported in [`ModelInfo::max_tokens`].
    pub max_tokens: Option<usize>,
}

impl OpenAiOptions {
    /// Options with defaults: no key, 64 inputs per request, 60 s per request, 10 s to
    /// connect.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, dimension: usize) -> Self {
        OpenAiOptions {
            base_url: base_url.into(),
            model: model.into(),
            dimension,
            api_key: None,
            batch_size: 64,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            request_dimensions: false,
            max_tokens: None,
        }
    }
}

impl fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_dimensions", &self.request_dimensions)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// An embedder that calls an OpenAI-compatible HTTP endpoint, one request per batch.
///
/// The client is `ureq`: blocking, like the [`Embedder`] trait and the rest of the embedded
/// engine, so no async runtime is dragged into library users; small (no hyper/tokio); and
/// with rustls, so `https` endpoints work without a system OpenSSL. Requests are not retried
/// here: [`EmbedError::is_retryable`] tells the caller which failures are worth a retry.
pub struct OpenAiCompatible {
    agent: ureq::Agent,
    url: String,
    api_key: Option<String>,
    batch_size: usize,
    timeout: Duration,
    request_dimensions: bool,
    info: ModelInfo,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("url", &self.url)
            .field("info", &self.info)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(serde::Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    /// Position of the input this vector belongs to. The protocol does not promise that
    /// `data` is in input order, so this is what places each vector.
    index: Option<usize>,
}

impl OpenAiCompatible {
    /// Checks the options and builds the client. Does not contact the server.
    pub fn new(options: OpenAiOptions) -> Result<Self> {
        let base = options.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(EmbedError::Config(format!(
                "base_url must start with http:// or https://, got {:?}",
                options.base_url
            )));
        }
        if options.model.is_empty() {
            return Err(EmbedError::Config("model must not be empty".into()));
        }
        if options.dimension == 0 || options.batch_size == 0 {
            return Err(EmbedError::Config(
                "dimension and batch_size must be at least 1".into(),
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.connect_timeout))
            // Error statuses are read as ordinary responses so that their body, the
            // server's explanation, reaches the error.
            .http_status_as_error(false)
            .user_agent(concat!("agentstore-embed/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut info = ModelInfo::new(options.model, options.dimension);
        info.max_tokens = options.max_tokens;
        Ok(OpenAiCompatible {
            agent: ureq::Agent::new_with_config(config),
            url: format!("{base}/embeddings"),
            api_key: options.api_key,
            batch_size: options.batch_size,
            timeout: options.timeout,
            request_dimensions: options.request_dimensions,
            info,
        })
    }

    /// The full endpoint URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn transport_error(&self, error: ureq::Error) -> EmbedError {
        match error {
            ureq::Error::Timeout(_) => EmbedError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            },
            other => EmbedError::Transport {
                url: self.url.clone(),
                reason: other.to_string(),
            },
        }
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let body = serde_json::to_vec(&EmbeddingRequest {
            model: &self.info.id,
            input: texts,
            dimensions: self.request_dimensions.then_some(self.info.dimension),
        })
        .map_err(|e| EmbedError::Config(format!("encoding the request: {e}")))?;

        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request
            .send(&body[..])
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;

        if !(200..300).contains(&status) {
            return Err(EmbedError::HttpStatus {
                url: self.url.clone(),
                status,
                body: String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(BODY_EXCERPT_CHARS)
                    .collect(),
            });
        }
        let parsed: EmbeddingResponse = serde_json::from_slice(&bytes).map_err(|e| {
            EmbedError::BadResponse(format!("{} answered with unexpected JSON: {e}", self.url))
        })?;
        self.place(texts.len(), parsed.data)
    }

    /// Puts the answer's vectors in input order, checking that there is exactly one valid
    /// vector per input.
    fn place(&self, expected: usize, data: Vec<EmbeddingItem>) -> Result<Vec<Vec<f32>>> {
        if data.len() != expected {
            return Err(EmbedError::BadResponse(format!(
                "{} returned {} embeddings for {expected} inputs",
                self.url,
                data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            self.info.check_vector(&item.embedding)?;
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                Some(Some(_)) => {
                    return Err(EmbedError::BadResponse(format!(
                        "{} returned index {index} twice",
                        self.url
                    )));
                }
                None => {
                    return Err(EmbedError::BadResponse(format!(
                        "{} returned index {index} for {expected} inputs",
                        self.url
                    )));
                }
            }
        }
        // Every slot is filled: `expected` items landed in `expected` slots without a
        // duplicate.
        Ok(slots.into_iter().flatten().collect())
    }
}

impl Embedder for OpenAiCompatible {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.embed_batch(batch)?);
        }
        Ok(out)
    }
}
