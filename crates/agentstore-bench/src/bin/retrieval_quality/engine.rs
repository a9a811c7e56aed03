//! The store side: every dataset goes in and every query goes out through the public
//! library API (`agentstore_sqlite::open`, `put_document`, `create_session` /
//! `append_events`, `search`), the way an agent platform embedding agentstore would call it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentstore::search::{Fusion, HitRecord, SearchFilter, SearchMode, Target};
use agentstore::text::ChunkOptions;
use agentstore::{
    Embedder, Embedding, Metric, Namespace, NewDocument, NewEvent, NewSession, Scope,
    SearchRequest, Store, WriteOp,
};
use agentstore_embed::BertEmbedder;
use agentstore_sqlite::{Durability, KeywordIndexMode, OpenOptions};
use anyhow::{Context, Result, bail, ensure};
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::json;

use crate::data::{Doc, QaItem, Query, Turn};

const TENANT: &str = "bench";

/// The model id of the precomputed SciFact vectors (ann-scifact-minilm): the id
/// `BertEmbedder` reports for all-MiniLM-L6-v2, so the store's query vectors and the
/// stored document vectors are one model to it.
pub const MINILM_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// MiniLM's vector length.
const MINILM_DIM: usize = 384;
/// Vectors per `PutVectors` write (one transaction each).
pub const VECTOR_BATCH: usize = 500;

/// One retrieval mode as the store runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Keyword,
    Vector,
    Hybrid(Fusion),
}

impl Mode {
    pub fn label(&self) -> String {
        match self {
            Mode::Keyword => "keyword (FTS5 BM25)".into(),
            Mode::Vector => "vector (all-MiniLM-L6-v2)".into(),
            Mode::Hybrid(Fusion::Rrf { k }) => format!("hybrid, RRF k={k}"),
            Mode::Hybrid(Fusion::Weighted { keyword, vector }) => {
                format!("hybrid, weighted {keyword} kw + {vector} vec")
            }
        }
    }

    /// [`Mode::label`] naming the keyword engine that answered, for the report's rows.
    pub fn row_label(&self, keyword: KeywordIndexMode) -> String {
        match (self, keyword) {
            (Mode::Keyword, KeywordIndexMode::Eager) => {
                "keyword (keyword index, tantivy BM25)".into()
            }
            _ => self.label(),
        }
    }

    pub fn needs_embedder(&self) -> bool {
        !matches!(self, Mode::Keyword)
    }

    /// The request for `text`: one function per mode so each can be read (and changed)
    /// on its own.
    pub fn request(
        &self,
        text: &str,
        limit: usize,
        target: Target,
        filter: SearchFilter,
    ) -> SearchRequest {
        let base = SearchRequest {
            text: Some(text.to_owned()),
            targets: vec![target],
            filter,
            limit,
            ..Default::default()
        };
        match *self {
            Mode::Keyword => keyword_request(base),
            Mode::Vector => vector_request(base),
            Mode::Hybrid(fusion) => hybrid_request(base, fusion),
        }
    }
}

fn keyword_request(base: SearchRequest) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Keyword),
        ..base
    }
}

/// The store embeds the query text itself (with the embedder it was given), as it would
/// for any caller that does not bring its own vector.
fn vector_request(base: SearchRequest) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Vector),
        ..base
    }
}

fn hybrid_request(base: SearchRequest, fusion: Fusion) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Hybrid),
        fusion,
        ..base
    }
}

/// A store in a fresh directory, deleted on drop.
pub struct Bench {
    pub store: Store,
    pub scope: Scope,
    pub embedding: bool,
    _dir: tempfile::TempDir,
}

/// Opens a store; with an embedder, one that embeds what it stores (events too, when
/// `embed_events`) and the text of vector and hybrid queries.
pub fn open(
    root: Option<&Path>,
    embedder: Option<&Arc<BertEmbedder>>,
    embed_events: bool,
    keyword: KeywordIndexMode,
) -> Result<Bench> {
    let dir = match root {
        Some(r) => tempfile::tempdir_in(r),
        None => tempfile::tempdir(),
    }
    .context("creating a temp dir for the store")?;
    // A quality benchmark: fsync per document would only slow ingest without changing a
    // single ranking, so commits are crash-safe but not power-loss-safe.
    let mut opts = OpenOptions::new(dir.path())
        .create()
        .durability(Durability::Normal);
    opts.keyword_index = keyword;
    let store = agentstore_sqlite::open(&opts)?;
    store.ensure_tenant(TENANT, TENANT)?;
    let store = attach_embedder(store, embedder, embed_events)?;
    Ok(Bench {
        store,
        scope: Scope::new(TENANT, TENANT),
        embedding: embedder.is_some(),
        _dir: dir,
    })
}

impl Bench {
    /// From now on, search with `embedder` embedding the query text (vector and hybrid
    /// modes) — after an ingest without one, whose vectors came from elsewhere. Refuses
    /// an embedder whose model id is not the one the stored vectors were written under.
    pub fn search_with(&mut self, embedder: &Arc<BertEmbedder>) -> Result<()> {
        let id = Embedder::model_id(embedder.as_ref());
        if id != MINILM_ID {
            bail!("the embedder reports model {id:?}; the precomputed vectors are {MINILM_ID:?}");
        }
        self.store = attach_embedder(self.store.clone(), Some(embedder), false)?;
        Ok(())
    }
}

fn attach_embedder(
    store: Store,
    embedder: Option<&Arc<BertEmbedder>>,
    embed_events: bool,
) -> Result<Store> {
    Ok(match embedder {
        None => store,
        Some(e) => store
            .with_embedder(Arc::clone(e) as Arc<dyn agentstore::embedding::Embedder>)
            .embed_events(embed_events),
    })
}

fn namespace(segments: &[&str]) -> Result<Namespace> {
    Ok(Namespace::new(segments.iter().copied())?)
}

// ------------------------------------------------------------------------- SciFact

/// Stores each abstract as one document of one chunk, `title + " " + text`, so that the
/// unit of retrieval is the BEIR document and the text is exactly what the reference
/// retrievers indexed (all-MiniLM-L6-v2 reads the first 256 tokens either way).
pub fn ingest_scifact(b: &Bench, docs: &[Doc]) -> Result<Duration> {
    let ns = namespace(&["scifact"])?;
    let start = Instant::now();
    for d in docs {
        b.store
            .put_document(
                &b.scope,
                NewDocument {
                    id: Some(d.id.clone()),
                    namespace: ns.clone(),
                    // Titles are searched as part of the content; the field is a label
                    // limited to 1 KiB, which a few scientific titles may exceed.
                    title: (d.title.len() <= 1024).then(|| d.title.clone()),
                    doc_type: Some("abstract".into()),
                    chunking: ChunkOptions {
                        size: 100_000,
                        overlap: 0,
                    },
                    ..NewDocument::new(d.indexed_text())
                },
            )
            .with_context(|| format!("storing SciFact doc {}", d.id))?;
    }
    Ok(start.elapsed())
}

/// Gives each stored SciFact document's one chunk the precomputed vector of its doc id
/// (`vectors`: doc id → vector), through the raw write API in batches, the model declared
/// first. The store must have been opened without an embedder, so that `put_document`
/// embedded nothing.
pub fn put_scifact_vectors(
    b: &Bench,
    docs: &[Doc],
    vectors: &std::collections::HashMap<String, Vec<f32>>,
) -> Result<Duration> {
    ensure!(
        !b.embedding,
        "precomputed vectors go to a store opened without an embedder"
    );
    let start = Instant::now();
    b.store.write(
        &b.scope,
        vec![WriteOp::DeclareVectorModel {
            model: MINILM_ID.into(),
            dimension: MINILM_DIM,
            metric: Metric::Cosine,
        }],
    )?;
    let mut items = Vec::with_capacity(docs.len());
    for d in docs {
        let chunks = b
            .store
            .list_chunks(&b.scope, &d.id)
            .with_context(|| format!("listing the chunks of SciFact doc {}", d.id))?;
        let [chunk] = &chunks[..] else {
            bail!("SciFact doc {} has {} chunks, not one", d.id, chunks.len());
        };
        let vector = vectors
            .get(&d.id)
            .with_context(|| format!("SciFact doc {} has no precomputed vector", d.id))?;
        ensure!(
            vector.len() == MINILM_DIM,
            "the vector of SciFact doc {} has {} values",
            d.id,
            vector.len()
        );
        items.push((
            chunk.id.clone(),
            Embedding {
                model: MINILM_ID.into(),
                vector: vector.clone(),
            },
        ));
    }
    while !items.is_empty() {
        let rest = items.split_off(items.len().min(VECTOR_BATCH));
        b.store.write(
            &b.scope,
            vec![WriteOp::PutVectors {
                target: Target::Chunk,
                items: std::mem::replace(&mut items, rest),
            }],
        )?;
    }
    Ok(start.elapsed())
}

/// Document ids per query, best first, and each search's latency.
pub fn search_scifact(
    b: &Bench,
    mode: Mode,
    queries: &[Query],
    limit: usize,
) -> Result<(Vec<Vec<String>>, Vec<Duration>)> {
    let filter = SearchFilter {
        namespace_prefix: Some(namespace(&["scifact"])?),
        ..Default::default()
    };
    let mut runs = Vec::with_capacity(queries.len());
    let mut latencies = Vec::with_capacity(queries.len());
    for q in queries {
        let req = mode.request(&q.text, limit, Target::Chunk, filter.clone());
        let start = Instant::now();
        let hits = b
            .store
            .search(&b.scope, req)
            .with_context(|| format!("{} search for SciFact query {}", mode.label(), q.id))?;
        latencies.push(start.elapsed());
        runs.push(
            hits.into_iter()
                .filter_map(|h| match h.record {
                    HitRecord::Chunk(c) => Some(c.document_id),
                    _ => None,
                })
                .collect(),
        );
    }
    Ok((runs, latencies))
}

// ------------------------------------------------------------------------- LoCoMo

/// `1:56 pm on 8 May, 2023`, as LoCoMo dates its sessions.
fn session_time(s: &str) -> Option<agentstore::Timestamp> {
    let t = NaiveDateTime::parse_from_str(s.trim(), "%I:%M %p on %d %B, %Y").ok()?;
    Some(Utc.from_utc_datetime(&t))
}

pub fn conversation_namespace(conv: &str) -> Result<Namespace> {
    namespace(&["locomo", conv])
}

/// Stores the turns as what they are to an agent platform: the raw message log of each
/// chat session. One session per LoCoMo session, in a namespace per conversation (the
/// user whose history it is), started at the session's date; each turn a `message`
/// event with the speaker as role and its dia_id in metadata. Memories would be the
/// wrong home: they hold distilled facts an agent (or an LLM pass) decided to keep, and
/// deriving them is exactly what this retrieval-level test leaves out.
pub fn ingest_locomo(b: &Bench, turns: &[Turn]) -> Result<Duration> {
    let start = Instant::now();
    let mut i = 0;
    while i < turns.len() {
        let first = &turns[i];
        let end = turns[i..]
            .iter()
            .position(|t| t.conv_id != first.conv_id || t.session != first.session)
            .map_or(turns.len(), |n| i + n);
        let started = session_time(&first.session_date_time);
        let session = b.store.create_session(
            &b.scope,
            NewSession {
                id: Some(format!("{}:S{}", first.conv_id, first.session)),
                namespace: conversation_namespace(&first.conv_id)?,
                title: Some(format!("{} session {}", first.conv_id, first.session)),
                started_at: started,
                metadata: json!({ "session_date_time": first.session_date_time }),
                ..NewSession::new("conversation")
            },
        )?;
        let events = turns[i..end]
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let mut metadata = json!({ "dia_id": t.dia_id });
                if let Some(c) = &t.blip_caption {
                    metadata["blip_caption"] = json!(c);
                }
                NewEvent {
                    content: Some(t.indexed_text()),
                    metadata: Some(metadata),
                    // Seconds apart from the session's start: the source has only a
                    // time per session, and a history import keeps original times.
                    created_at: started.map(|s| s + chrono::Duration::seconds(n as i64)),
                    ..NewEvent::message(t.speaker.clone(), String::new())
                }
            })
            .collect();
        b.store
            .append_events(&b.scope, &session.id, events)
            .with_context(|| format!("appending {}", session.id))?;
        i = end;
    }
    // Events are indexed for full text in bulk at the first search or at maintenance;
    // doing it here charges it to ingest, as docs/search.md advises after bulk loads.
    b.store.maintenance(false)?;
    Ok(start.elapsed())
}

/// dia_ids per question, best first, searched only in the question's conversation.
pub fn search_locomo(
    b: &Bench,
    mode: Mode,
    queries: &[QaItem],
    limit: usize,
) -> Result<(Vec<Vec<String>>, Vec<Duration>)> {
    let mut runs = Vec::with_capacity(queries.len());
    let mut latencies = Vec::with_capacity(queries.len());
    for q in queries {
        let filter = SearchFilter {
            namespace_prefix: Some(conversation_namespace(&q.conv_id)?),
            kinds: vec!["message".into()],
            ..Default::default()
        };
        let req = mode.request(&q.question, limit, Target::Event, filter);
        let start = Instant::now();
        let hits = b
            .store
            .search(&b.scope, req)
            .with_context(|| format!("{} search for LoCoMo {}", mode.label(), q.id))?;
        latencies.push(start.elapsed());
        runs.push(
            hits.into_iter()
                .filter_map(|h| match h.record {
                    HitRecord::Event(e) => e.metadata.get("dia_id")?.as_str().map(str::to_owned),
                    _ => None,
                })
                .collect(),
        );
    }
    Ok((runs, latencies))
}

#[cfg(test)]
mod tests {
    #[test]
    fn locomo_dates_parse() {
        let t = super::session_time("1:56 pm on 8 May, 2023").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-05-08T13:56:00+00:00");
        assert!(super::session_time("someday").is_none());
    }
}
