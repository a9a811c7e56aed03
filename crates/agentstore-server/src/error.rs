//! Errors as the API returns them: `{"code", "message"}` with an HTTP status taken from
//! one table, [`STATUS`].

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::QueryRejection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every error code the API returns and its HTTP status. Codes are API: never rename one.
/// The engine's codes ([`agentstore::Error::code`]) come first, then the server's own.
pub const STATUS: &[(&str, u16)] = &[
    ("not_found", 404),
    ("already_exists", 409),
    ("invalid_input", 400),
    ("too_large", 413),
    ("conflict", 409),
    // A legal gate, not a malformed request: the caller must record consent first.
    ("consent_required", 403),
    ("lock_held", 409),
    ("key_unavailable", 410),
    ("stale_token", 409),
    ("import_error", 400),
    // The deployment is not ready for this binary (migrations pending, bad config): the
    // request may succeed once an operator acts, so 503 rather than 500.
    ("schema_mismatch", 503),
    ("schema_pending", 503),
    ("config_error", 503),
    ("corrupt", 500),
    ("busy", 503),
    ("io_error", 500),
    // The embedder is another service (or a model the server runs): its failure is not
    // the server's own.
    ("embedding_error", 502),
    ("database_error", 500),
    // The server's own.
    ("invalid_json", 400),
    ("unsupported_media_type", 415),
    ("unauthorized", 401),
    ("forbidden", 403),
    ("rate_limited", 429),
    ("method_not_allowed", 405),
    ("unavailable", 503),
    ("internal", 500),
];

/// The status of `code` (500 for a code missing from [`STATUS`], which a test forbids).
pub fn status_of(code: &str) -> StatusCode {
    STATUS
        .iter()
        .find(|(c, _)| *c == code)
        .and_then(|(_, s)| StatusCode::from_u16(*s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (see the table in the API description).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code from [`STATUS`].
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<agentstore::Error> for ApiError {
    fn from(e: agentstore::Error) -> Self {
        let code = e.code();
        // Server-side failures are logged in full; the client learns only what it can act
        // on (paths and database messages stay in the log).
        let message = if e.is_client_error() {
            e.to_string()
        } else {
            tracing::error!(code, error = %e, "request failed");
            match &e {
                agentstore::Error::Busy
                | agentstore::Error::SchemaPending { .. }
                | agentstore::Error::SchemaMismatch(_)
                | agentstore::Error::Embedding { .. } => e.to_string(),
                _ => "internal error; the server log has the details".to_owned(),
            }
        };
        let err = ApiError::new(code, message);
        if matches!(e, agentstore::Error::Busy) {
            err.retry_after(1)
        } else {
            err
        }
    }
}

/// Rejections of axum's extractors: a body that is not JSON or not the expected shape,
/// a body over the size limit, a query string or path that does not parse.
fn rejection(status: StatusCode, text: String, fallback: &'static str) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new("too_large", text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new("unsupported_media_type", text),
        _ => ApiError::new(fallback, text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        rejection(r.status(), r.body_text(), "invalid_json")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejection(r.status(), r.body_text(), "invalid_input")
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        rejection(r.status(), r.body_text(), "invalid_input")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_status() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, status) in STATUS {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(StatusCode::from_u16(*status).is_ok(), "{code}: bad status");
        }
    }

    #[test]
    fn every_engine_error_code_is_in_the_table() {
        use agentstore::Error;
        let samples = [
            Error::not_found("session", "x"),
            Error::AlreadyExists {
                entity: "tenant",
                id: "t".into(),
            },
            Error::invalid("f", "r"),
            Error::TooLarge {
                field: "f".into(),
                size: 2,
                limit: 1,
            },
            Error::Conflict("c".into()),
            Error::LockHeld {
                name: "l".into(),
                holder: "h".into(),
                expires_at: "t".into(),
            },
            Error::StaleToken {
                name: "l".into(),
                token: 1,
                current: 2,
            },
            Error::Import {
                line: 1,
                message: "m".into(),
            },
            Error::SchemaMismatch("m".into()),
            Error::SchemaPending {
                current: 1,
                latest: 2,
                pending: 1,
            },
            Error::Config("c".into()),
            Error::Corrupt("c".into()),
            Error::Busy,
            Error::io("/p", std::io::Error::other("e")),
            Error::Embedding {
                code: "timeout",
                message: "m".into(),
            },
            Error::Database("d".into()),
        ];
        for e in samples {
            assert!(
                STATUS.iter().any(|(c, _)| *c == e.code()),
                "{} has no status",
                e.code()
            );
        }
    }

    #[test]
    fn server_failures_do_not_leak_details() {
        let e: ApiError = agentstore::Error::io("/secret/path", std::io::Error::other("x")).into();
        assert_eq!(e.code(), "io_error");
        assert!(!e.message.contains("/secret/path"));
    }
}
