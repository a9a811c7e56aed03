//! Namespace paths such as `["app", "user-42"]`, searchable by prefix.
//!
//! Stored encoded as the segments each followed by U+001F (unit separator), so that a
//! prefix query is a plain range scan on an ordinary index in either backend:
//! `["app"]` encodes to `"app\x1f"`, and everything under it sorts in
//! `["app\x1f", "app\x20")`. Segments may not contain control characters, which keeps the
//! encoding unambiguous.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const SEP: char = '\u{1f}';
/// Longest accepted segment, in bytes.
pub const MAX_SEGMENT: usize = 128;
/// Deepest accepted path.
pub const MAX_DEPTH: usize = 16;

/// A namespace path. The empty path is the tenant's root.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Namespace(Vec<String>);

impl Namespace {
    /// The root namespace.
    pub fn root() -> Self {
        Namespace(Vec::new())
    }

    /// Builds and validates a namespace from its segments.
    pub fn new<I, S>(segments: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ns = Namespace(segments.into_iter().map(Into::into).collect());
        ns.validate()?;
        Ok(ns)
    }

    /// Parses `a/b/c` (the CLI form). An empty string is the root.
    pub fn parse_path(s: &str) -> Result<Self> {
        if s.is_empty() || s == "/" {
            return Ok(Self::root());
        }
        Self::new(s.trim_matches('/').split('/'))
    }

    /// Checks segment count, lengths and characters.
    pub fn validate(&self) -> Result<()> {
        if self.0.len() > MAX_DEPTH {
            return Err(Error::invalid(
                "namespace",
                format!("at most {MAX_DEPTH} segments"),
            ));
        }
        for seg in &self.0 {
            if seg.is_empty() {
                return Err(Error::invalid("namespace", "empty segment"));
            }
            if seg.len() > MAX_SEGMENT {
                return Err(Error::invalid(
                    "namespace",
                    format!("segment longer than {MAX_SEGMENT} bytes"),
                ));
            }
            if seg.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "namespace",
                    "segments may not contain control characters",
                ));
            }
        }
        Ok(())
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Storage encoding (see module docs).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            out.push_str(seg);
            out.push(SEP);
        }
        out
    }

    /// Inverse of [`Namespace::encode`].
    pub fn decode(s: &str) -> Self {
        Namespace(
            s.split_terminator(SEP)
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    }

    /// Half-open range `[lo, hi)` of encoded namespaces at or under this prefix.
    /// `hi` is `None` for the root (everything matches).
    pub fn prefix_range(&self) -> (String, Option<String>) {
        let lo = self.encode();
        if lo.is_empty() {
            return (lo, None);
        }
        let mut hi = lo.clone();
        hi.pop();
        hi.push('\u{20}');
        (lo, Some(hi))
    }

    /// `a/b` form for display.
    pub fn display_path(&self) -> String {
        self.0.join("/")
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trip_and_prefix() {
        let ns = Namespace::new(["app", "user-42"]).unwrap();
        assert_eq!(Namespace::decode(&ns.encode()), ns);
        let (lo, hi) = Namespace::new(["app"]).unwrap().prefix_range();
        let enc = ns.encode();
        assert!(enc >= lo && enc < hi.unwrap());
        let other = Namespace::new(["apple"]).unwrap().encode();
        let (lo, hi) = Namespace::new(["app"]).unwrap().prefix_range();
        assert!(!(other >= lo && other < hi.unwrap()));
        assert_eq!(Namespace::decode(""), Namespace::root());
    }

    #[test]
    fn rejects_bad_segments() {
        assert!(Namespace::new([""]).is_err());
        assert!(Namespace::new(["a\u{1f}b"]).is_err());
        assert!(Namespace::parse_path("a//b").is_err());
        assert_eq!(Namespace::parse_path("a/b").unwrap().segments().len(), 2);
    }
}
