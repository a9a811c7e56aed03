//! The one error type of the embedders.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while loading a model or embedding text.
///
/// Grouped like `agentstore::Error`: fix the deployment (`ModelFile`, `Config`), fix the
/// input (`InvalidVector`, `DimensionMismatch` for caller-supplied vectors), or retry /
/// escalate (`Transport`, `Timeout`, `HttpStatus`, `BadResponse`, `Tokenizer`,
/// `Inference`). [`EmbedError::code`] is stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A model file is missing, unreadable or malformed. `path` names the file.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid embedder options (batch size 0, a malformed URL, an unsupported model layout).
    #[error("embedder configuration: {0}")]
    Config(String),
    /// The tokenizer rejected a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model's forward pass failed.
    #[error("inference: {0}")]
    Inference(String),
    /// The embedding server could not be reached or the connection broke.
    #[error("embedding request to {url} failed: {reason}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The underlying failure.
        reason: String,
    },
    /// The embedding server did not answer in time.
    #[error("embedding request to {url} timed out after {after:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The configured limit.
        after: Duration,
    },
    /// The embedding server answered with a non-success status.
    #[error("embedding request to {url} returned HTTP {status}: {body}")]
    HttpStatus {
        /// The endpoint.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The start of the response body (at most 512 characters), usually the server's
        /// explanation.
        body: String,
    },
    /// The embedding server (or a wrapped embedder) answered something that is not a valid
    /// set of embeddings for the request.
    #[error("bad embedding response: {0}")]
    BadResponse(String),
    /// A vector has the wrong length for its model.
    #[error("model {model} has dimension {expected}, got a vector of {actual}")]
    DimensionMismatch {
        /// Model id.
        model: String,
        /// The model's dimension.
        expected: usize,
        /// Length of the vector received.
        actual: usize,
    },
    /// A vector contains NaN or infinity.
    #[error("invalid vector: {0}")]
    InvalidVector(String),
}

impl EmbedError {
    /// Stable machine-readable code. These strings are API: never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            EmbedError::ModelFile { .. } => "model_file",
            EmbedError::Config(_) => "config_error",
            EmbedError::Tokenizer(_) => "tokenizer_error",
            EmbedError::Inference(_) => "inference_error",
            EmbedError::Transport { .. } => "transport_error",
            EmbedError::Timeout { .. } => "timeout",
            EmbedError::HttpStatus { .. } => "http_status",
            EmbedError::BadResponse(_) => "bad_response",
            EmbedError::DimensionMismatch { .. } => "dimension_mismatch",
            EmbedError::InvalidVector(_) => "invalid_vector",
        }
    }

    /// True when the same request may succeed later unchanged: network failures, timeouts,
    /// rate limiting (429) and server errors (5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            EmbedError::Transport { .. } | EmbedError::Timeout { .. } => true,
            EmbedError::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn model_file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        EmbedError::ModelFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
