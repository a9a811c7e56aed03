//! Search over memories, chunks and events (SPEC §3): the request and response types,
//! the conversion of query text into a full-text expression that can never be query
//! syntax, and the pure ranking functions the engine applies to a backend's candidates.
//!
//! The path of a search ([`crate::Store::search`]):
//!
//! 1. the request is validated and its mode resolved ([`SearchRequest::validate`]); the
//!    query text is split into words ([`query_terms`]) and each word becomes a quoted FTS5
//!    string, ORed with the others ([`fts5_expression`]); for vector and hybrid search
//!    without a query vector, the store's embedder embeds the text;
//! 2. the backend returns the best keyword candidates ([`crate::Backend::keyword_candidates`],
//!    BM25 where higher is better) and the nearest vectors
//!    ([`crate::Backend::vector_candidates`]), with the filters applied;
//! 3. the ranked lists are fused ([`fuse`]: reciprocal rank fusion by default, weighted
//!    fusion of min–max normalised scores on request);
//! 4. the fused score is multiplied by a recency factor ([`recency_factor`]) and, for
//!    memories, an importance factor ([`importance_factor`]);
//! 5. with `mmr_lambda`, hits are picked by maximal marginal relevance ([`mmr_order`]);
//!    the similarity of two hits is the cosine of their vectors when the search used
//!    vectors and both have one, else the Jaccard index of their word sets ([`jaccard`]);
//! 6. the records are loaded and every hit reports the components of its score.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::validate_id;
use crate::error::{Error, Result};
use crate::model::{Chunk, Event, Json, Memory};
use crate::namespace::Namespace;
use crate::store::Limits;
use crate::time::Timestamp;

/// Hits returned when the request does not say.
pub const DEFAULT_LIMIT: usize = 10;
/// Most hits one search returns; larger limits are clamped to it, as list pages are.
pub const MAX_LIMIT: usize = 1000;
/// Candidates asked of the backend: `limit × CANDIDATE_FACTOR`, at least
/// [`MIN_CANDIDATES`], so reranking by recency, importance and diversity has room to
/// promote hits from below the first `limit`.
pub const CANDIDATE_FACTOR: usize = 4;
/// Fewest candidates asked of the backend.
pub const MIN_CANDIDATES: usize = 50;
/// Candidates per list of a hybrid search that only fuses (no recency, importance or
/// diversity reranking): `limit × HYBRID_CANDIDATE_FACTOR`, at least
/// [`MIN_HYBRID_CANDIDATES`]. Fusion already draws on two lists, and a record at rank 21
/// or lower of one list adds at most 1/81 to its RRF score. On SciFact (limit 10) 20
/// keyword candidates instead of 50 left nDCG@10 where it was (RRF 0.7218 against
/// 0.7180, weighted 0.7279 against 0.7291); on LoCoMo, 20 per list instead of 50 raised
/// hybrid RRF recall@10 from 0.534 to 0.607, as deep vector candidates were mostly noise
/// that outranked good keyword hits. At a million chunks hybrid search went from 5.3 to
/// 3.4 ms p50: the keyword side, the slower one, walks postings until its k-th best
/// score, and a smaller k raises that bar sooner.
pub const HYBRID_CANDIDATE_FACTOR: usize = 2;
/// Fewest candidates per list of a fusing hybrid search.
pub const MIN_HYBRID_CANDIDATES: usize = 20;
/// Most distinct words in a query; each one is a term of the full-text expression.
pub const MAX_QUERY_TERMS: usize = 256;
/// Most metadata conditions in one filter.
pub const MAX_METADATA_CONDITIONS: usize = 32;
/// Most segments in a metadata path.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Longest metadata path segment, in bytes.
pub const MAX_PATH_SEGMENT: usize = 128;
/// Search breadth of the approximate vector index when the request does not say.
pub const DEFAULT_EF: usize = 100;
/// Largest accepted search breadth.
pub const MAX_EF: usize = 10_000;

/// A kind of record a search looks in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Memories (content, summary, topic, tags).
    Memory,
    /// Document chunks (content).
    Chunk,
    /// Session events (content, tool name).
    Event,
}

impl Target {
    /// Every target, in the order ties are broken.
    pub const ALL: [Target; 3] = [Target::Memory, Target::Chunk, Target::Event];

    /// `memory`, `chunk` or `event`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Memory => "memory",
            Target::Chunk => "chunk",
            Target::Event => "event",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How candidates are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// BM25 full text over the query text.
    Keyword,
    /// Nearest neighbours of the query vector (given, or the query text embedded by the
    /// store's embedder).
    Vector,
    /// Both, fused.
    Hybrid,
}

/// How ranked lists are combined into one score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion: the sum over lists of `1 / (k + rank)`, ranks from 1. Uses
    /// only ranks, so scores on different scales (BM25, cosine) need no calibration.
    Rrf {
        /// Damping constant; 60 is the value of Cormack et al. (2009).
        k: f64,
    },
    /// `keyword × s_keyword + vector × s_vector`, where each `s` is the candidate's score
    /// min–max normalised over its list (1 for the best, 0 for the worst, 1 for every
    /// member of a list whose scores are all equal, 0 when absent from the list).
    Weighted {
        /// Weight of the keyword list.
        keyword: f64,
        /// Weight of the vector list.
        vector: f64,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: 60.0 }
    }
}

/// Comparison of a metadata condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetadataOp {
    /// Equal (same JSON type and value).
    Eq,
    /// Not equal: every record for which `Eq` does not hold, records without the key
    /// included.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
}

impl MetadataOp {
    /// The SQL comparison operator.
    pub fn sql(&self) -> &'static str {
        match self {
            MetadataOp::Eq => "=",
            MetadataOp::Ne => "!=",
            MetadataOp::Lt => "<",
            MetadataOp::Lte => "<=",
            MetadataOp::Gt => ">",
            MetadataOp::Gte => ">=",
        }
    }
}

/// A condition on a record's metadata (memories and events: their own; chunks: their
/// document's).
///
/// Values compare within their JSON type: a number with numbers (numerically), a string
/// with strings (byte-wise, so ISO 8601 times order correctly), `true` / `false` / `null`
/// by equality only. A record whose value at `path` is missing or of another type fails
/// every operator except `ne`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetadataCondition {
    /// A top-level key (`source`) or a dotted path into nested objects (`origin.app`);
    /// segments are `[A-Za-z0-9_-]+`.
    pub path: String,
    /// Comparison.
    pub op: MetadataOp,
    /// A string, number, boolean or null.
    pub value: Json,
}

impl MetadataCondition {
    /// A condition.
    pub fn new(path: impl Into<String>, op: MetadataOp, value: impl Into<Json>) -> Self {
        MetadataCondition {
            path: path.into(),
            op,
            value: value.into(),
        }
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('.')
    }

    /// The path as a JSON path with every segment quoted (`$."origin"."app"`), for
    /// `json_extract` and `json_type`. Segments are validated to `[A-Za-z0-9_-]+`, so the
    /// quotes can never be closed early; the path is still bound as a parameter, never
    /// spliced into SQL.
    pub fn json_path(&self) -> String {
        let mut p = String::from("$");
        for s in self.segments() {
            p.push_str(".\"");
            p.push_str(s);
            p.push('"');
        }
        p
    }

    /// A condition written `path:op:value` in a query string (`mastery:lt:0.5`,
    /// `source:eq:import`). The value is a JSON number, `true`, `false`, `null` or a
    /// JSON string literal (`"0.5"` for the string) when it parses as one, and otherwise
    /// the text itself as a string. The result is validated.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.splitn(3, ':');
        let (Some(path), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::invalid(
                "metadata",
                format!("'{}' is not path:op:value", text.escape_debug()),
            ));
        };
        let op = match op {
            "eq" => MetadataOp::Eq,
            "ne" => MetadataOp::Ne,
            "lt" => MetadataOp::Lt,
            "lte" => MetadataOp::Lte,
            "gt" => MetadataOp::Gt,
            "gte" => MetadataOp::Gte,
            other => {
                return Err(Error::invalid(
                    "metadata",
                    format!(
                        "'{}' is not one of eq, ne, lt, lte, gt, gte",
                        other.escape_debug()
                    ),
                ));
            }
        };
        let value = match serde_json::from_str::<Json>(value) {
            Ok(v @ (Json::Number(_) | Json::Bool(_) | Json::Null | Json::String(_))) => v,
            _ => Json::String(value.to_owned()),
        };
        let c = MetadataCondition::new(path, op, value);
        c.validate()?;
        Ok(c)
    }

    /// Checks the path and that the operator fits the value's type.
    pub fn validate(&self) -> Result<()> {
        let segments: Vec<&str> = self.segments().collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(Error::invalid(
                "filter.metadata.path",
                format!("at most {MAX_PATH_SEGMENTS} segments"),
            ));
        }
        for s in segments {
            if s.is_empty()
                || s.len() > MAX_PATH_SEGMENT
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(Error::invalid(
                    "filter.metadata.path",
                    format!(
                        "'{}' must be keys of 1 to {MAX_PATH_SEGMENT} letters, digits, _ or - joined by dots",
                        self.path.escape_debug()
                    ),
                ));
            }
        }
        let ordered = !matches!(self.op, MetadataOp::Eq | MetadataOp::Ne);
        match &self.value {
            Json::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(()),
            Json::Number(_) => Err(Error::invalid(
                "filter.metadata.value",
                "must be a finite number",
            )),
            Json::String(_) => Ok(()),
            Json::Bool(_) | Json::Null if !ordered => Ok(()),
            Json::Bool(_) | Json::Null => Err(Error::invalid(
                "filter.metadata.op",
                "booleans and null compare only with eq and ne",
            )),
            Json::Array(_) | Json::Object(_) => Err(Error::invalid(
                "filter.metadata.value",
                "must be a string, number, boolean or null",
            )),
        }
    }
}

/// Filters of a search. Every field set must hold; a field a target does not have
/// excludes that target (see [`SearchFilter::applies_to`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SearchFilter {
    /// Namespace prefix (memories; chunks: their document's; events: their session's).
    pub namespace_prefix: Option<Namespace>,
    /// Any of these kinds (memory kind, event kind, or the document type of a chunk).
    pub kinds: Vec<String>,
    /// Every one of these tags (memories only).
    pub tags: Vec<String>,
    /// Session (events in it; memories derived from it, by `source_sessions`).
    pub session_id: Option<String>,
    /// Subject (memories; chunks: their document's; events: their session's).
    pub subject_id: Option<String>,
    /// Agent (memories; events: their session's).
    pub agent_id: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    /// Memories: the versions valid at this time; None: current versions (`valid_to`
    /// unset). Chunks and events have no validity and are not affected.
    pub valid_at: Option<Timestamp>,
    /// Metadata conditions, all of which must hold.
    pub metadata: Vec<MetadataCondition>,
}

impl SearchFilter {
    /// Whether a record of `target` can satisfy this filter at all: tags exist only on
    /// memories, sessions on memories and events, agents on memories and events.
    pub fn applies_to(&self, target: Target) -> bool {
        match target {
            Target::Memory => true,
            Target::Chunk => {
                self.tags.is_empty() && self.session_id.is_none() && self.agent_id.is_none()
            }
            Target::Event => self.tags.is_empty(),
        }
    }

    fn validate(&self, limits: &Limits) -> Result<()> {
        if let Some(ns) = &self.namespace_prefix {
            ns.validate()?;
        }
        let label = |field: &str, v: &str| -> Result<()> {
            if v.trim().is_empty() || v.chars().any(char::is_control) {
                return Err(Error::invalid(
                    field,
                    "must be non-empty text without control characters",
                ));
            }
            if v.len() > limits.max_short_field {
                return Err(Error::TooLarge {
                    field: field.into(),
                    size: v.len(),
                    limit: limits.max_short_field,
                });
            }
            Ok(())
        };
        if self.kinds.len() > 64 {
            return Err(Error::invalid("filter.kinds", "at most 64 kinds"));
        }
        self.kinds
            .iter()
            .try_for_each(|k| label("filter.kinds", k))?;
        if self.tags.len() > 64 {
            return Err(Error::invalid("filter.tags", "at most 64 tags"));
        }
        self.tags.iter().try_for_each(|t| label("filter.tags", t))?;
        for (field, id) in [
            ("filter.session_id", &self.session_id),
            ("filter.subject_id", &self.subject_id),
            ("filter.agent_id", &self.agent_id),
        ] {
            if let Some(id) = id {
                validate_id(field, id)?;
            }
        }
        if let (Some(from), Some(to)) = (&self.from, &self.to)
            && from >= to
        {
            return Err(Error::invalid(
                "filter.to",
                "must be later than filter.from",
            ));
        }
        if self.metadata.len() > MAX_METADATA_CONDITIONS {
            return Err(Error::invalid(
                "filter.metadata",
                format!("at most {MAX_METADATA_CONDITIONS} conditions"),
            ));
        }
        self.metadata
            .iter()
            .try_for_each(MetadataCondition::validate)
    }
}

/// One search over memories, chunks and events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SearchRequest {
    /// Query text (keyword search). Words are matched with English stemming, case and
    /// diacritics folded; any word may match (OR), and documents matching more and rarer
    /// words rank higher (BM25). Operators and punctuation are never query syntax.
    pub text: Option<String>,
    /// Query vector (vector search), of the store's vector model unless `model` says
    /// otherwise. Without one, vector and hybrid search embed `text` with the store's
    /// embedder.
    pub vector: Option<Vec<f32>>,
    /// Model of `vector` (None: the store's vector model).
    pub model: Option<String>,
    /// Mode; None: hybrid when there is text and a vector (given, or one the store can
    /// embed), otherwise whichever of the two there is.
    pub mode: Option<SearchMode>,
    /// Where to look (empty: everywhere).
    pub targets: Vec<Target>,
    /// Filters.
    pub filter: SearchFilter,
    /// Most hits (0: [`DEFAULT_LIMIT`]; at most [`MAX_LIMIT`]).
    pub limit: usize,
    /// How ranked lists are fused.
    pub fusion: Fusion,
    /// Multiply each score by `0.5^(age / half_life)`, age = now − created_at.
    pub recency_half_life_secs: Option<f64>,
    /// Multiply a memory's score by `1 + weight × importance`.
    pub importance_weight: Option<f64>,
    /// Diversify by maximal marginal relevance: 1 = relevance only, 0 = diversity only.
    pub mmr_lambda: Option<f64>,
    /// Search breadth of the approximate vector index (None: [`DEFAULT_EF`]).
    pub ef: Option<usize>,
    /// Compare the query vector with every matching vector (exact, slower).
    pub exact: bool,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            text: None,
            vector: None,
            mode: None,
            targets: Vec::new(),
            filter: SearchFilter::default(),
            limit: DEFAULT_LIMIT,
            fusion: Fusion::default(),
            recency_half_life_secs: None,
            importance_weight: None,
            mmr_lambda: None,
            ef: None,
            exact: false,
            model: None,
        }
    }
}

/// A validated request, as the engine runs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// The resolved mode.
    pub mode: SearchMode,
    /// The query's distinct words.
    pub terms: Vec<String>,
    /// The FTS5 expression; None when the text holds no words (no keyword match).
    pub expression: Option<String>,
    /// Targets the filter can match, distinct, in [`Target::ALL`] order.
    pub targets: Vec<Target>,
    /// Hits wanted.
    pub limit: usize,
}

impl SearchRequest {
    /// A keyword search for `text` with defaults elsewhere.
    pub fn text(text: impl Into<String>) -> Self {
        SearchRequest {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    /// A vector search for `vector` with defaults elsewhere.
    pub fn vector(vector: Vec<f32>) -> Self {
        SearchRequest {
            vector: Some(vector),
            ..Default::default()
        }
    }

    /// Checks the request without running it (the CLI checks before opening a store).
    /// `can_embed`: whether the store that will run it has an embedder.
    pub fn validate(&self, limits: &Limits, can_embed: bool) -> Result<()> {
        self.plan(limits, can_embed).map(|_| ())
    }

    /// The mode a request runs in; see [`SearchRequest::mode`].
    pub fn resolve_mode(&self, can_embed: bool) -> Result<SearchMode> {
        let has_text = self.text.as_deref().is_some_and(|t| !t.trim().is_empty());
        let has_vector = self.vector.is_some() || (has_text && can_embed);
        let no_vector = || {
            Error::invalid(
                "mode",
                "vector search needs a query vector, or query text and a store with an embedder",
            )
        };
        match self.mode {
            Some(SearchMode::Keyword) if has_text => Ok(SearchMode::Keyword),
            Some(SearchMode::Keyword) => {
                Err(Error::invalid("text", "keyword search needs query text"))
            }
            Some(SearchMode::Vector) if has_vector => Ok(SearchMode::Vector),
            Some(SearchMode::Vector) => Err(no_vector()),
            Some(SearchMode::Hybrid) if !has_text => {
                Err(Error::invalid("text", "hybrid search needs query text"))
            }
            Some(SearchMode::Hybrid) if has_vector => Ok(SearchMode::Hybrid),
            Some(SearchMode::Hybrid) => Err(no_vector()),
            None if has_text && has_vector => Ok(SearchMode::Hybrid),
            None if has_vector => Ok(SearchMode::Vector),
            None if has_text => Ok(SearchMode::Keyword),
            None => Err(Error::invalid(
                "text",
                "a search needs query text or a query vector",
            )),
        }
    }

    pub(crate) fn plan(&self, limits: &Limits, can_embed: bool) -> Result<Plan> {
        let mode = self.resolve_mode(can_embed)?;
        let text = self.text.as_deref().unwrap_or("");
        if let Some(v) = &self.vector {
            crate::embedding::check_vector("vector", v, None)?;
        }
        if let Some(m) = &self.model
            && (m.trim().is_empty() || m.len() > limits.max_short_field)
        {
            return Err(Error::invalid("model", "must be a non-empty model id"));
        }
        if let Some(ef) = self.ef
            && !(1..=MAX_EF).contains(&ef)
        {
            return Err(Error::invalid("ef", format!("must be 1 to {MAX_EF}")));
        }
        if text.len() > limits.max_content_bytes {
            return Err(Error::TooLarge {
                field: "text".into(),
                size: text.len(),
                limit: limits.max_content_bytes,
            });
        }
        let terms = query_terms(text);
        if terms.len() > MAX_QUERY_TERMS {
            return Err(Error::invalid(
                "text",
                format!("at most {MAX_QUERY_TERMS} distinct words"),
            ));
        }
        self.filter.validate(limits)?;
        match self.fusion {
            Fusion::Rrf { k } if !(k.is_finite() && k >= 0.0) => {
                return Err(Error::invalid(
                    "fusion.k",
                    "must be a finite number, 0 or more",
                ));
            }
            Fusion::Weighted { keyword, vector }
                if !(keyword.is_finite() && vector.is_finite())
                    || keyword < 0.0
                    || vector < 0.0
                    || keyword + vector <= 0.0 =>
            {
                return Err(Error::invalid(
                    "fusion",
                    "weights must be finite, 0 or more, and not both 0",
                ));
            }
            _ => {}
        }
        if let Some(h) = self.recency_half_life_secs
            && !(h.is_finite() && h > 0.0)
        {
            return Err(Error::invalid(
                "recency_half_life_secs",
                "must be a positive number of seconds",
            ));
        }
        if let Some(w) = self.importance_weight
            && !(w.is_finite() && w >= 0.0)
        {
            return Err(Error::invalid(
                "importance_weight",
                "must be a finite number, 0 or more",
            ));
        }
        if let Some(l) = self.mmr_lambda
            && !(0.0..=1.0).contains(&l)
        {
            return Err(Error::invalid("mmr_lambda", "must be between 0 and 1"));
        }
        let wanted: BTreeSet<Target> = if self.targets.is_empty() {
            Target::ALL.into_iter().collect()
        } else {
            self.targets.iter().copied().collect()
        };
        Ok(Plan {
            mode,
            expression: fts5_expression(&terms),
            terms,
            targets: wanted
                .into_iter()
                .filter(|t| self.filter.applies_to(*t))
                .collect(),
            limit: match self.limit {
                0 => DEFAULT_LIMIT,
                n => n.min(MAX_LIMIT),
            },
        })
    }
}

/// How a hit's score came about. `score = fused × recency × importance` (absent factors
/// count as 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreComponents {
    /// BM25 of the keyword match, higher is better (None: not in the keyword list).
    pub keyword: Option<f64>,
    /// Position in the keyword list, from 1.
    pub keyword_rank: Option<usize>,
    /// Vector similarity under the model's metric (None: not in the vector list).
    pub vector: Option<f64>,
    /// Position in the vector list, from 1.
    pub vector_rank: Option<usize>,
    /// The fused score of the lists ([`Fusion`]).
    pub fused: f64,
    /// Recency factor `0.5^(age / half_life)` (when a half-life was given).
    pub recency: Option<f64>,
    /// Importance factor `1 + weight × importance` (memories, when a weight was given).
    pub importance: Option<f64>,
}

/// The record a hit points at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
// Boxing the memory would save nothing that matters: hits are built once per search and
// every one holds a full record anyway.
#[allow(clippy::large_enum_variant)]
pub enum HitRecord {
    Memory(Memory),
    Chunk(Chunk),
    Event(Event),
}

impl HitRecord {
    /// The text a search matched against: a memory's content, summary, topic and tags; a
    /// chunk's content; an event's content and tool name.
    pub fn searchable_text(&self) -> String {
        match self {
            HitRecord::Memory(m) => {
                let mut parts = vec![m.content.as_str()];
                parts.extend(m.summary.as_deref());
                parts.extend(m.topic.as_deref());
                parts.extend(m.tags.iter().map(String::as_str));
                parts.join(" ")
            }
            HitRecord::Chunk(c) => c.content.clone(),
            HitRecord::Event(e) => [e.content.as_deref(), e.tool_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchHit {
    /// Kind of record.
    pub target: Target,
    /// Record id.
    pub id: String,
    /// Final score, higher is better. Hits come best first, except with MMR, where they
    /// come in selection order.
    pub score: f64,
    /// How the score came about.
    pub components: ScoreComponents,
    /// The full record.
    pub record: HitRecord,
}

// ------------------------------------------------------------------------- text

/// Scripts written without spaces between words: FTS5's unicode61 tokenizer keeps a run
/// of such characters as one token, so a query word in them is matched as a prefix of
/// the indexed run rather than as a whole token.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF       // Thai, Lao
        | 0x1100..=0x11FF     // Hangul Jamo
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0x20000..=0x3FFFF // CJK extensions B and later
    )
}

/// Runs of letters and digits (any script), lowercased; everything else separates. This
/// is what FTS5's unicode61 tokenizer treats as token characters, so a query word is a
/// token of the index (or, where the two disagree on a rare character, a phrase of
/// tokens, which still matches the same text).
fn word_iter(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The distinct words of a query, in order of first appearance.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    word_iter(text).filter(|w| seen.insert(w.clone())).collect()
}

/// The set of words of a text, for [`jaccard`].
pub fn word_set(text: &str) -> BTreeSet<String> {
    word_iter(text).collect()
}

/// An FTS5 expression matching any of `terms`: each term a quoted FTS5 string (a `"`
/// inside doubled), joined by `OR`. Inside a string FTS5 recognises no operator, column
/// filter or prefix mark, so whatever the user typed is searched for as words. A term
/// in a script written without spaces gets a trailing `*` outside its quotes (a prefix
/// query; see [`is_unspaced_script`]). None when there are no terms.
pub fn fts5_expression(terms: &[String]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    let parts: Vec<String> = terms
        .iter()
        .map(|t| {
            let quoted = format!("\"{}\"", t.replace('"', "\"\""));
            if t.chars().any(is_unspaced_script) {
                quoted + "*"
            } else {
                quoted
            }
        })
        .collect();
    Some(parts.join(" OR "))
}

// ------------------------------------------------------------------------- ranking

/// A candidate's place in each ranked list: (rank from 1, raw score).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ranked {
    /// Keyword list.
    pub keyword: Option<(usize, f64)>,
    /// Vector list.
    pub vector: Option<(usize, f64)>,
}

/// Reciprocal rank fusion of one candidate's ranks: `Σ 1 / (k + rank)`.
pub fn rrf(k: f64, ranks: impl IntoIterator<Item = usize>) -> f64 {
    ranks.into_iter().map(|r| 1.0 / (k + r as f64)).sum()
}

/// Min–max normalisation of `v` over `[lo, hi]`: 1 when the range is empty.
fn normalise(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo { (v - lo) / (hi - lo) } else { 1.0 }
}

/// The fused score of every item (see [`Fusion`] for the formulas).
pub fn fuse(items: &[Ranked], fusion: &Fusion) -> Vec<f64> {
    match *fusion {
        Fusion::Rrf { k } => items
            .iter()
            .map(|r| {
                rrf(
                    k,
                    r.keyword
                        .map(|x| x.0)
                        .into_iter()
                        .chain(r.vector.map(|x| x.0)),
                )
            })
            .collect(),
        Fusion::Weighted { keyword, vector } => {
            let range = |f: fn(&Ranked) -> Option<(usize, f64)>| {
                items
                    .iter()
                    .filter_map(f)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, s)| {
                        (lo.min(s), hi.max(s))
                    })
            };
            let (klo, khi) = range(|r| r.keyword);
            let (vlo, vhi) = range(|r| r.vector);
            items
                .iter()
                .map(|r| {
                    keyword * r.keyword.map_or(0.0, |(_, s)| normalise(s, klo, khi))
                        + vector * r.vector.map_or(0.0, |(_, s)| normalise(s, vlo, vhi))
                })
                .collect()
        }
    }
}

/// `0.5^(age / half_life)`: 1 for a record created now (or in the future), ½ at one
/// half-life.
pub fn recency_factor(age_secs: f64, half_life_secs: f64) -> f64 {
    0.5f64.powf(age_secs.max(0.0) / half_life_secs)
}

/// `1 + weight × importance`.
pub fn importance_factor(weight: f64, importance: f64) -> f64 {
    1.0 + weight * importance
}

/// Jaccard index `|a ∩ b| / |a ∪ b|` of two word sets; 0 when both are empty.
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Maximal marginal relevance (Carbonell & Goldstein, 1998): picks up to `k` indexes of
/// `relevance`, each time the one maximising
/// `λ × relevance / max_relevance − (1 − λ) × max similarity to the ones picked`.
/// Relevance is divided by its maximum so both terms lie in [0, 1]. Ties go to the lower
/// index, so with the input sorted best first, λ = 1 keeps that order.
pub fn mmr_order(
    relevance: &[f64],
    lambda: f64,
    k: usize,
    sim: impl Fn(usize, usize) -> f64,
) -> Vec<usize> {
    let top = relevance.iter().copied().fold(0.0f64, f64::max);
    let rel = |i: usize| if top > 0.0 { relevance[i] / top } else { 0.0 };
    let mut picked: Vec<usize> = Vec::with_capacity(k.min(relevance.len()));
    // Highest similarity of each unpicked item to anything picked so far.
    let mut max_sim = vec![0.0f64; relevance.len()];
    let mut free: Vec<bool> = vec![true; relevance.len()];
    while picked.len() < k {
        let mut best: Option<(usize, f64)> = None;
        for i in (0..relevance.len()).filter(|&i| free[i]) {
            let v = lambda * rel(i) - (1.0 - lambda) * max_sim[i];
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
        let Some((i, _)) = best else { break };
        free[i] = false;
        picked.push(i);
        for j in (0..relevance.len()).filter(|&j| free[j]) {
            max_sim[j] = max_sim[j].max(sim(i, j));
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn terms(s: &str) -> Vec<String> {
        query_terms(s)
    }

    #[test]
    fn query_text_becomes_quoted_terms() {
        assert_eq!(terms("Running, runs & RAN!"), ["running", "runs", "ran"]);
        assert_eq!(
            fts5_expression(&terms("alpha AND beta")).unwrap(),
            r#""alpha" OR "and" OR "beta""#
        );
        assert_eq!(
            fts5_expression(&terms(r#"NEAR(a b) "x" y* -z col:w ^v 'q'; --"#)).unwrap(),
            r#""near" OR "a" OR "b" OR "x" OR "y" OR "z" OR "col" OR "w" OR "v" OR "q""#
        );
        assert_eq!(fts5_expression(&terms(r#"* " () : -"#)), None);
        assert_eq!(terms("Café naïve café"), ["café", "naïve"]);
        assert_eq!(
            fts5_expression(&terms("東京タワー、大阪")).unwrap(),
            r#""東京タワー"* OR "大阪"*"#
        );
        assert_eq!(fts5_expression(&["a\"b".to_owned()]).unwrap(), r#""a""b""#);
    }

    #[test]
    fn metadata_paths_are_checked_and_quoted() {
        let c = MetadataCondition::new("origin.app-id", MetadataOp::Eq, "x");
        c.validate().unwrap();
        assert_eq!(c.json_path(), r#"$."origin"."app-id""#);
        for bad in ["", "a..b", "a.\"b", "a b", "$.a", "a[0]", "ä"] {
            let e = MetadataCondition::new(bad, MetadataOp::Eq, 1)
                .validate()
                .unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad}");
        }
        let e = MetadataCondition::new("a", MetadataOp::Gt, true)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("eq and ne"), "{e}");
        assert!(
            MetadataCondition::new("a", MetadataOp::Eq, serde_json::json!([1]))
                .validate()
                .is_err()
        );
        MetadataCondition::new("a", MetadataOp::Ne, Json::Null)
            .validate()
            .unwrap();
    }

    #[test]
    fn requests_are_validated() {
        let l = Limits::default();
        let err = |r: SearchRequest| r.validate(&l, false).unwrap_err().to_string();
        let hybrid = SearchRequest {
            mode: Some(SearchMode::Hybrid),
            ..SearchRequest::text("x")
        };
        assert!(err(hybrid.clone()).contains("needs a query vector"));
        hybrid.validate(&l, true).unwrap();
        let vector_mode = SearchRequest {
            mode: Some(SearchMode::Vector),
            ..SearchRequest::text("x")
        };
        assert!(err(vector_mode).contains("needs a query vector"));
        assert!(err(SearchRequest::default()).contains("query text or a query vector"));
        assert!(err(SearchRequest::text("  ")).contains("query text or a query vector"));
        let keyword_no_text = SearchRequest {
            mode: Some(SearchMode::Keyword),
            ..SearchRequest::vector(vec![1.0])
        };
        assert!(err(keyword_no_text).contains("needs query text"));
        let bad_vector = SearchRequest::vector(vec![f32::NAN]);
        assert!(err(bad_vector).contains("finite"));
        let bad_ef = SearchRequest {
            ef: Some(0),
            ..SearchRequest::vector(vec![1.0])
        };
        assert!(err(bad_ef).contains("ef"));
        let mode = |r: &SearchRequest, e| r.resolve_mode(e).unwrap();
        let both = SearchRequest {
            vector: Some(vec![1.0]),
            ..SearchRequest::text("x")
        };
        assert_eq!(mode(&both, false), SearchMode::Hybrid);
        assert_eq!(mode(&SearchRequest::text("x"), false), SearchMode::Keyword);
        assert_eq!(mode(&SearchRequest::text("x"), true), SearchMode::Hybrid);
        assert_eq!(
            mode(&SearchRequest::vector(vec![1.0]), true),
            SearchMode::Vector
        );
        let bad_half_life = SearchRequest {
            recency_half_life_secs: Some(0.0),
            ..SearchRequest::text("x")
        };
        assert!(err(bad_half_life).contains("recency_half_life_secs"));
        let bad_lambda = SearchRequest {
            mmr_lambda: Some(1.5),
            ..SearchRequest::text("x")
        };
        assert!(err(bad_lambda).contains("mmr_lambda"));
        let bad_weights = SearchRequest {
            fusion: Fusion::Weighted {
                keyword: 0.0,
                vector: 0.0,
            },
            ..SearchRequest::text("x")
        };
        assert!(err(bad_weights).contains("fusion"));
        let t = crate::time::now();
        let bad_window = SearchRequest {
            filter: SearchFilter {
                from: Some(t),
                to: Some(t),
                ..Default::default()
            },
            ..SearchRequest::text("x")
        };
        assert!(err(bad_window).contains("filter.to"));

        let plan = SearchRequest {
            targets: vec![Target::Event, Target::Chunk, Target::Event],
            filter: SearchFilter {
                agent_id: Some("a1".into()),
                ..Default::default()
            },
            limit: 5000,
            ..SearchRequest::text("x")
        }
        .plan(&l, false)
        .unwrap();
        // Chunks have no agent, so the agent filter leaves only events.
        assert_eq!(plan.targets, [Target::Event]);
        assert_eq!(plan.limit, MAX_LIMIT);
        let plan = SearchRequest {
            limit: 0,
            ..SearchRequest::text("*")
        }
        .plan(&l, false)
        .unwrap();
        assert_eq!((plan.expression, plan.limit), (None, DEFAULT_LIMIT));
    }

    #[test]
    fn request_json_has_defaults() {
        let r: SearchRequest = serde_json::from_str(r#"{"text": "x"}"#).unwrap();
        assert_eq!(r, SearchRequest::text("x"));
        let r: SearchRequest = serde_json::from_str(
            r#"{"text": "x", "fusion": {"method": "weighted", "keyword": 0.3, "vector": 0.7},
                "targets": ["memory"], "filter": {"metadata": [{"path": "a.b", "op": "gte", "value": 2}]}}"#,
        )
        .unwrap();
        assert_eq!(
            r.fusion,
            Fusion::Weighted {
                keyword: 0.3,
                vector: 0.7
            }
        );
        assert_eq!(r.filter.metadata[0].op, MetadataOp::Gte);
    }

    #[test]
    fn one_list_rrf_and_weighted() {
        let items: Vec<Ranked> = [9.0, 4.0, 1.0]
            .iter()
            .enumerate()
            .map(|(i, s)| Ranked {
                keyword: Some((i + 1, *s)),
                vector: None,
            })
            .collect();
        let f = fuse(&items, &Fusion::default());
        assert_eq!(f, [1.0 / 61.0, 1.0 / 62.0, 1.0 / 63.0]);
        let w = fuse(
            &items,
            &Fusion::Weighted {
                keyword: 2.0,
                vector: 1.0,
            },
        );
        assert_eq!(w, [2.0, 2.0 * 3.0 / 8.0, 0.0]);
        let both = fuse(
            &[Ranked {
                keyword: Some((1, 3.0)),
                vector: Some((2, 0.9)),
            }],
            &Fusion::default(),
        );
        assert_eq!(both, [1.0 / 61.0 + 1.0 / 62.0]);
    }

    #[test]
    fn recency_importance_jaccard() {
        assert_eq!(recency_factor(0.0, 10.0), 1.0);
        assert_eq!(recency_factor(-5.0, 10.0), 1.0);
        assert!((recency_factor(10.0, 10.0) - 0.5).abs() < 1e-12);
        assert!((recency_factor(30.0, 10.0) - 0.125).abs() < 1e-12);
        assert_eq!(importance_factor(2.0, 0.5), 2.0);
        let a = word_set("the cat sat");
        let b = word_set("The cat ran");
        assert_eq!(jaccard(&a, &b), 2.0 / 4.0);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&BTreeSet::new(), &BTreeSet::new()), 0.0);
    }

    #[test]
    fn mmr_skips_near_duplicates() {
        let texts = [
            "rust borrow checker",
            "rust borrow checker rules",
            "python gil",
        ];
        let sets: Vec<_> = texts.iter().map(|t| word_set(t)).collect();
        let sim = |i: usize, j: usize| jaccard(&sets[i], &sets[j]);
        let rel = [1.0, 0.95, 0.5];
        assert_eq!(mmr_order(&rel, 1.0, 3, sim), [0, 1, 2]);
        assert_eq!(mmr_order(&rel, 0.5, 3, sim), [0, 2, 1]);
        assert_eq!(mmr_order(&rel, 0.5, 2, sim), [0, 2]);
        assert_eq!(mmr_order(&[], 0.5, 2, sim), Vec::<usize>::new());
    }

    proptest! {
        /// With one list, RRF strictly decreases with rank; with two, a candidate at least
        /// as well placed in every list, and present in every list the other is in,
        /// scores at least as high; every score lies in (0, lists / (k + 1)].
        #[test]
        fn rrf_orders_by_rank(
            k in 0.0f64..200.0,
            ranks in proptest::collection::vec((1usize..500, proptest::option::of(1usize..500)), 1..40),
        ) {
            let items: Vec<Ranked> = ranks
                .iter()
                .map(|&(kr, vr)| Ranked { keyword: Some((kr, 0.0)), vector: vr.map(|r| (r, 0.0)) })
                .collect();
            let f = fuse(&items, &Fusion::Rrf { k });
            for (i, a) in items.iter().enumerate() {
                let lists = 1 + usize::from(a.vector.is_some());
                prop_assert!(f[i] > 0.0 && f[i] <= lists as f64 / (k + 1.0) + 1e-12);
                for (j, b) in items.iter().enumerate() {
                    let kw_better = a.keyword.unwrap().0 <= b.keyword.unwrap().0;
                    let vec_better = match (a.vector, b.vector) {
                        (_, None) => true,
                        (Some(x), Some(y)) => x.0 <= y.0,
                        (None, Some(_)) => false,
                    };
                    if kw_better && vec_better {
                        prop_assert!(f[i] >= f[j], "{a:?} {} < {b:?} {}", f[i], f[j]);
                    }
                    if a.vector.is_none() && b.vector.is_none() && a.keyword.unwrap().0 < b.keyword.unwrap().0 {
                        prop_assert!(f[i] > f[j]);
                    }
                }
            }
        }

        /// Weighted fusion keeps a single list's order and stays within [0, weights].
        #[test]
        fn weighted_keeps_order(
            mut scores in proptest::collection::vec(0.0f64..100.0, 1..40),
            wk in 0.01f64..5.0,
        ) {
            scores.sort_by(|a, b| b.total_cmp(a));
            let items: Vec<Ranked> = scores
                .iter()
                .enumerate()
                .map(|(i, s)| Ranked { keyword: Some((i + 1, *s)), vector: None })
                .collect();
            let f = fuse(&items, &Fusion::Weighted { keyword: wk, vector: 1.0 });
            for w in f.windows(2) {
                prop_assert!(w[0] >= w[1]);
            }
            prop_assert!(f.iter().all(|v| (0.0..=wk + 1e-12).contains(v)));
        }

        /// Any text becomes either nothing or quoted terms joined by OR: no quote is left
        /// open and nothing outside the quotes but ` OR ` and a prefix `*`.
        #[test]
        fn fts5_expression_is_only_quoted_terms(text in any::<String>()) {
            if let Some(e) = fts5_expression(&query_terms(&text)) {
                for part in e.split(" OR ") {
                    let body = part.strip_suffix('*').unwrap_or(part);
                    prop_assert!(body.len() >= 2 && body.starts_with('"') && body.ends_with('"'), "{part}");
                    prop_assert!(!body[1..body.len() - 1].contains('"'));
                }
            }
        }

        /// MMR returns distinct indexes, as many as asked (or available), and with λ = 1
        /// the relevance order.
        #[test]
        fn mmr_picks_distinct(
            mut rel in proptest::collection::vec(0.0f64..10.0, 0..30),
            k in 0usize..40,
            lambda in 0.0f64..=1.0,
        ) {
            rel.sort_by(|a, b| b.total_cmp(a));
            let sim = |i: usize, j: usize| if (i + j).is_multiple_of(3) { 0.9 } else { 0.1 };
            let order = mmr_order(&rel, lambda, k, sim);
            prop_assert_eq!(order.len(), k.min(rel.len()));
            let distinct: BTreeSet<_> = order.iter().collect();
            prop_assert_eq!(distinct.len(), order.len());
            let greedy = mmr_order(&rel, 1.0, k, sim);
            let mut expect: Vec<usize> = (0..rel.len()).collect();
            expect.truncate(k);
            prop_assert_eq!(greedy, expect);
        }
    }
}
