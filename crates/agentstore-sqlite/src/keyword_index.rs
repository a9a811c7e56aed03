//! The keyword index of large stores: BM25 over memories, chunks and events in a tantivy
//! index held in memory, derived from the record tables.
//!
//! ## Why beside FTS5
//!
//! FTS5 (migration 0003) answers `ORDER BY bm25` by scoring every record that holds any
//! query word, so its cost grows with the store: a question of ordinary words over a
//! million chunks scores most of them. tantivy keeps per-block score bounds in its
//! postings and skips blocks that cannot reach the current top k (block-max WAND), so a
//! top-10 costs about the same at a million records as at thousands. FTS5 stays the truth
//! and answers whenever this index is not ready or cannot answer a query exactly.
//!
//! ## Tenants without a filter clause
//!
//! A tenant condition as a second query clause would switch tantivy from block-max WAND
//! to scoring every match. Instead every indexed word carries its target and tenant:
//! `c<tenant>\x1f<word>` is the word `<word>` in a chunk of `<tenant>`. A query is then a
//! plain disjunction of one tenant's words, and its statistics (document frequencies)
//! are the tenant's own. The words themselves are those of FTS5's tokenizer as nearly as
//! tantivy has them: runs of letters and digits, lowercased, diacritics folded, English
//! stemming (Snowball's English stemmer where FTS5 uses Porter's original).
//!
//! ## Keeping the index and the tables in agreement
//!
//! A record is new to the index when its rid lies above the index's mark for its table.
//! Deletes and rewritten text are recorded by triggers in `keyword_log` (migration 0005),
//! each entry naming a record; the index re-reads the named records (or finds them gone).
//! Before every search, [`KeywordIndex::candidates`] applies, in the search's own read
//! snapshot, every log entry past its watermark and every row past its marks, then
//! commits; a search therefore sees every record committed before it started, as FTS5
//! does. Nothing of this index is on disk, so a crash cannot leave it wrong: each process
//! builds its own from the tables.
//!
//! ## When it is used
//!
//! Building costs time and memory in proportion to the store, which a small store does
//! not need (FTS5 answers it in a few milliseconds) and a one-shot CLI command would
//! never recover. So by default ([`KeywordIndexMode::Auto`]) the index is built in a
//! background thread once the store holds enough records, and FTS5 answers until it is
//! ready. Other filters than the tenant are applied in SQL to the index's candidates,
//! widening fourfold until enough pass; past [`POSTFILTER_MAX`] candidates FTS5 answers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use agentstore::backend::{Candidate, KeywordQuery};
use agentstore::search::{Target, is_unspaced_script};
use agentstore::{Error, Result};
use parking_lot::Mutex;
use rusqlite::Connection;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, PreTokenizedString, RemoveLongFilter,
    SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, Token,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::conn::Connections;
use crate::search::{Shape, apply_filter, shape};
use crate::sql::*;

/// When the keyword index is built and used (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeywordIndexMode {
    /// Never: FTS5 answers every keyword query.
    Off,
    /// Built in a background thread once the store holds at least `min_records` records
    /// (memories, chunks and events together); FTS5 answers until it is ready.
    Auto {
        /// Store size at which building starts.
        min_records: u64,
    },
    /// Built by the first keyword search, which waits for it (benchmarks and tests that
    /// want this index whatever the store's size).
    Eager,
}

impl Default for KeywordIndexMode {
    fn default() -> Self {
        KeywordIndexMode::Auto {
            min_records: 50_000,
        }
    }
}

/// Most candidates checked against the filters before FTS5 answers instead.
pub(crate) const POSTFILTER_MAX: usize = 20_000;
/// Indexing threads, and the memory they may buffer before writing a segment.
const WRITER_THREADS: usize = 2;
const WRITER_MEMORY: usize = 2 * 64 * 1024 * 1024;
/// Separates the tenant from the word in an indexed term (never part of a word).
const SEP: char = '\u{1f}';
/// Words longer than this are not indexed (tantivy refuses terms past 64 KiB).
const MAX_WORD_BYTES: usize = 255;

fn target_index(t: Target) -> usize {
    match t {
        Target::Memory => 0,
        Target::Chunk => 1,
        Target::Event => 2,
    }
}

fn target_prefix(t: Target) -> char {
    match t {
        Target::Memory => 'm',
        Target::Chunk => 'c',
        Target::Event => 'e',
    }
}

/// The rid bits of a document key.
const RID_MASK: u64 = (1 << 56) - 1;

/// A record's document key: its target in the top byte, its rid below.
fn key(t: Target, rid: i64) -> u64 {
    ((target_index(t) as u64) << 56) | (rid as u64 & RID_MASK)
}

/// The searchable text of a target's records, concatenated (FTS5 indexes the same
/// columns, see migrations 0003 and 0008: sealed fields opened, a strict subject's left
/// out).
fn text_sql(t: Target) -> &'static str {
    match t {
        Target::Memory => {
            "SELECT rid, tenant_id, concat_ws(' ', as_index(content), as_index(summary),
                 as_index(topic, content), as_index(tags, content)) FROM memories"
        }
        Target::Chunk => "SELECT rid, tenant_id, as_index(content) FROM chunks",
        Target::Event => {
            "SELECT rid, tenant_id, concat_ws(' ', as_index(content), as_index(tool_name, content))
             FROM events"
        }
    }
}

fn tantivy_err(e: tantivy::TantivyError) -> Error {
    Error::Corrupt(format!("keyword index: {e}"))
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The words of a query that carry meaning: [`analyzer`] without English stop words
/// ("the", "of", "is", ...). They are indexed, but a query skips them when it has other
/// words: each adds almost nothing to a BM25 score (it is in most records) while its
/// postings, a million long in a large store, cost more to walk than all the others.
fn query_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
        .filter(LowerCaser)
        .filter(
            StopWordFilter::new(Language::English)
                .unwrap_or_else(|| StopWordFilter::remove(Vec::new())),
        )
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The words of `text` as this index stores them.
fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    stream.process(&mut |t: &Token| out.push(t.clone()));
    out
}

fn term_text(t: Target, tenant: &str, word: &str) -> String {
    let mut s = String::with_capacity(tenant.len() + word.len() + 2);
    s.push(target_prefix(t));
    s.push_str(tenant);
    s.push(SEP);
    s.push_str(word);
    s
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let key = b.add_u64_field("key", INDEXED | FAST);
    // Term frequencies and field lengths for BM25; no positions (no phrase queries).
    let body = b.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_index_option(IndexRecordOption::WithFreqs),
        ),
    );
    (b.build(), Fields { key, body })
}

/// The log's end, truncation mark and epoch, and each table's highest rid, from one
/// snapshot.
struct LogState {
    end: i64,
    truncated: i64,
    epoch: String,
    max_rid: [i64; 3],
}

fn log_state(c: &Connection) -> Result<LogState> {
    // A log truncated whole is empty but ends where it was truncated.
    c.prepare_cached(
        "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM keyword_log), truncated_through),
                truncated_through, epoch,
                (SELECT COALESCE(MAX(rid), 0) FROM memories),
                (SELECT COALESCE(MAX(rid), 0) FROM chunks),
                (SELECT COALESCE(MAX(rid), 0) FROM events)
         FROM keyword_log_state WHERE id = 1",
    )
    .db()?
    .query_row([], |r| {
        Ok(LogState {
            end: r.get(0)?,
            truncated: r.get(1)?,
            epoch: r.get(2)?,
            max_rid: [r.get(3)?, r.get(4)?, r.get(5)?],
        })
    })
    .db()
}

/// The writer side: tantivy's writer and how far it has followed the tables.
struct Writer {
    writer: IndexWriter,
    analyzer: TextAnalyzer,
    epoch: String,
    /// Last log entry applied.
    watermark: i64,
    /// Per target: every row at or below this rid has been indexed.
    marks: [i64; 3],
}

impl Writer {
    fn add(&mut self, f: Fields, t: Target, rid: i64, tenant: &str, text: &str) -> Result<()> {
        let tokens: Vec<Token> = words(&mut self.analyzer, text)
            .into_iter()
            .map(|mut tok| {
                tok.text = term_text(t, tenant, &tok.text);
                tok
            })
            .collect();
        let mut doc = TantivyDocument::new();
        doc.add_u64(f.key, key(t, rid));
        // The text itself is not stored; only its words are indexed.
        doc.add_pre_tokenized_text(
            f.body,
            PreTokenizedString {
                text: String::new(),
                tokens,
            },
        );
        self.writer.add_document(doc).map_err(tantivy_err)?;
        Ok(())
    }

    fn delete(&mut self, f: Fields, t: Target, rid: i64) {
        self.writer
            .delete_term(Term::from_field_u64(f.key, key(t, rid)));
    }

    /// Applies everything committed as of `c`'s snapshot (module docs). Returns false when
    /// the log no longer reaches back to the watermark, or is another incarnation: the
    /// index must then be built again.
    fn catch_up(&mut self, c: &Connection, f: Fields, closed: &AtomicBool) -> Result<bool> {
        let st = log_state(c)?;
        if st.epoch != self.epoch || st.truncated > self.watermark {
            return Ok(false);
        }
        // A snapshot older than what the index has applied (a concurrent search that began
        // earlier) must not scan: it could bring back rows deleted since. The caller's
        // filter query reads its own snapshot, which drops newer records.
        if st.end < self.watermark
            || (st.end == self.watermark && (0..3).all(|i| st.max_rid[i] <= self.marks[i]))
        {
            return Ok(true);
        }
        // Records the log names, and how far each table's rid scan must reach down.
        let mut touched: [BTreeSet<i64>; 3] = Default::default();
        let mut low = self.marks;
        {
            let mut stmt = c
                .prepare_cached(
                    "SELECT target, rid, floor FROM keyword_log WHERE seq > ?1 AND seq <= ?2",
                )
                .db()?;
            let rows = stmt
                .query_map([self.watermark, st.end], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })
                .db()?;
            for row in rows {
                let (target, rid, floor) = row.db()?;
                let i = target_index(parse_target(&target, "keyword log entry")?);
                touched[i].insert(rid);
                if let Some(floor) = floor {
                    low[i] = low[i].min(floor);
                }
            }
        }
        for t in Target::ALL {
            let i = target_index(t);
            // Every named record leaves the index; those the scan below will not reach are
            // read again (the scan re-adds the others that still exist).
            for &rid in &touched[i] {
                self.delete(f, t, rid);
            }
            for &rid in touched[i].range(..=low[i]) {
                let row = c
                    .prepare_cached(&format!("{} WHERE rid = ?1", text_sql(t)))
                    .db()?
                    .query_row([rid], |r| {
                        Ok((r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                    });
                if let Some((tenant, text)) = opt(row)? {
                    self.add(f, t, rid, &tenant, text.as_deref().unwrap_or(""))?;
                }
            }
            // Rows above the (lowered) mark; those at or below the old mark may be in the
            // index already, so they replace their old document.
            let mut stmt = c
                .prepare_cached(&format!("{} WHERE rid > ?1 ORDER BY rid", text_sql(t)))
                .db()?;
            let mut rows = stmt.query([low[i]]).db()?;
            let mut n = 0u64;
            while let Some(r) = rows.next().db()? {
                let rid: i64 = r.get(0).db()?;
                let tenant: String = r.get(1).db()?;
                let text: Option<String> = r.get(2).db()?;
                if rid <= self.marks[i] {
                    self.delete(f, t, rid);
                }
                self.add(f, t, rid, &tenant, text.as_deref().unwrap_or(""))?;
                n += 1;
                if n.is_multiple_of(10_000) && closed.load(Ordering::Relaxed) {
                    return Err(Error::Config("store closed".into()));
                }
            }
            self.marks[i] = st.max_rid[i];
        }
        self.writer.commit().map_err(tantivy_err)?;
        self.watermark = st.end;
        Ok(true)
    }
}

/// A built index.
struct Ready {
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Writer>,
}

impl Ready {
    fn build(c: &Connection, closed: &AtomicBool) -> Result<Ready> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let writer = index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)
            .map_err(tantivy_err)?;
        let st = log_state(c)?;
        let mut w = Writer {
            writer,
            analyzer: analyzer(),
            epoch: st.epoch.clone(),
            // The tables as of this snapshot are read whole: the log up to here is moot.
            watermark: st.end,
            marks: [0; 3],
        };
        if !w.catch_up(c, fields, closed)? {
            return Err(Error::Corrupt("keyword log changed while building".into()));
        }
        // One segment: a query walks every segment's postings separately, each with its
        // own top-k threshold, so the bulk-built index is searched fastest merged.
        let segments = index.searchable_segment_ids().map_err(tantivy_err)?;
        if segments.len() > 1 {
            w.writer.merge(&segments).wait().map_err(tantivy_err)?;
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err)?;
        Ok(Ready {
            reader,
            fields,
            writer: Mutex::new(w),
        })
    }

    /// Catches up with `c`'s snapshot; false when the index must be rebuilt.
    fn sync(&self, c: &Connection, closed: &AtomicBool) -> Result<bool> {
        let mut w = self.writer.lock();
        let before = w.watermark;
        let marks = w.marks;
        if !w.catch_up(c, self.fields, closed)? {
            return Ok(false);
        }
        if w.watermark != before || w.marks != marks {
            self.reader.reload().map_err(tantivy_err)?;
        }
        Ok(true)
    }

    /// The best `q.limit` candidates over `q.targets`, or None when some target needs
    /// FTS5 (a word in a script written without spaces, which FTS5 matches by prefix, or
    /// a filter that rejects too many candidates).
    fn candidates(
        &self,
        c: &Connection,
        tenant: &str,
        q: &KeywordQuery,
    ) -> Result<Option<Vec<Candidate>>> {
        if q.terms.iter().any(|t| t.chars().any(is_unspaced_script)) {
            return Ok(None);
        }
        let mut query_words = BTreeSet::new();
        let mut meaningful = query_analyzer();
        for term in &q.terms {
            for tok in words(&mut meaningful, term) {
                query_words.insert(tok.text);
            }
        }
        if query_words.is_empty() {
            // Nothing but stop words: search for them after all.
            let mut analyzer = analyzer();
            for term in &q.terms {
                for tok in words(&mut analyzer, term) {
                    query_words.insert(tok.text);
                }
            }
        }
        let searcher = self.reader.searcher();
        // Opening a fast-field column decodes its block index: once per segment and
        // search, not once per hit (that was an eighth of a search's time at 1M).
        let keys = searcher
            .segment_readers()
            .iter()
            .map(|r| r.fast_fields().u64("key"))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(tantivy_err)?;
        let mut out = Vec::new();
        for &target in &q.targets {
            if !q.filter.applies_to(target) || query_words.is_empty() {
                continue;
            }
            let clauses: Vec<(Occur, Box<dyn Query>)> = query_words
                .iter()
                .map(|w| {
                    let term =
                        Term::from_field_text(self.fields.body, &term_text(target, tenant, w));
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
                            as Box<dyn Query>,
                    )
                })
                .collect();
            let query = BooleanQuery::new(clauses);
            let mut k = q.limit.max(1);
            loop {
                let top = searcher
                    .search(&query, &TopDocs::with_limit(k).order_by_score())
                    .map_err(tantivy_err)?;
                let mut hits = Vec::with_capacity(top.len());
                for (score, addr) in &top {
                    let column = &keys[addr.segment_ord as usize];
                    if let Some(key) = column.first(addr.doc_id) {
                        hits.push(((key & RID_MASK) as i64, *score));
                    }
                }
                let rids: Vec<i64> = hits.iter().map(|h| h.0).collect();
                let passing = passing(c, tenant, q, target, &rids)?;
                let found: Vec<Candidate> = hits
                    .iter()
                    .filter_map(|(rid, score)| {
                        passing.get(rid).map(|d| Candidate {
                            target,
                            id: d.0.clone(),
                            score: f64::from(*score),
                            created_at: to_ts(d.1),
                            importance: d.2,
                        })
                    })
                    .take(q.limit)
                    .collect();
                if found.len() >= q.limit || top.len() < k {
                    out.extend(found);
                    break;
                }
                if k >= POSTFILTER_MAX {
                    return Ok(None);
                }
                k = (k * 4).min(POSTFILTER_MAX);
            }
        }
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| (a.target, &a.id).cmp(&(b.target, &b.id)))
        });
        out.truncate(q.limit);
        Ok(Some(out))
    }

    /// Documents, and the bytes of the index's segments.
    fn size(&self) -> (u64, u64) {
        let searcher = self.reader.searcher();
        let bytes = searcher
            .space_usage()
            .map(|u| u.total().get_bytes())
            .unwrap_or(0);
        (searcher.num_docs(), bytes)
    }
}

/// What a candidate needs from its record: id, creation time, importance.
type Details = (String, i64, Option<f64>);

/// Of `rids` (a target's records), those of the tenant that pass every filter, with
/// their details.
fn passing(
    c: &Connection,
    tenant: &str,
    q: &KeywordQuery,
    target: Target,
    rids: &[i64],
) -> Result<HashMap<i64, Details>> {
    if rids.is_empty() {
        return Ok(HashMap::new());
    }
    let s: Shape = shape(target);
    let mut f = Filter::default();
    f.eq("r.tenant_id", tenant.to_owned());
    apply_filter(&mut f, &s, target, &q.filter, q.now);
    // Driven from the candidates (CROSS JOIN pins the order): left to itself, SQLite may
    // walk the tenant's index over every record instead, 150 ms at a million chunks
    // against 0.1 ms.
    let sql = format!(
        "SELECT r.rid, r.id, r.created_at, {importance}
         FROM json_each(?) k CROSS JOIN {table} r ON r.rid = k.value {parent} {where_}",
        importance = s.importance,
        table = s.table,
        parent = s.parent,
        where_ = f.where_sql(),
    );
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
    let list = to_json_text(&rids);
    params.push(&list);
    params.extend(f.param_refs());
    let mut stmt = c.prepare_cached(&sql).db()?;
    let rows = stmt
        .query_map(params.as_slice(), |r| {
            Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
        })
        .db()?;
    let mut out = HashMap::new();
    for row in rows {
        let (rid, d) = row.db()?;
        out.insert(rid, d);
    }
    Ok(out)
}

enum Phase {
    Idle,
    Building,
    Ready(Arc<Ready>),
    /// Building failed; FTS5 answers for the rest of this process.
    Failed,
}

/// The keyword index of one open store.
pub(crate) struct KeywordIndex {
    mode: KeywordIndexMode,
    phase: Arc<Mutex<Phase>>,
    /// Set when the store closes: a background build stops early.
    closed: Arc<AtomicBool>,
    /// Keyword-indexed rows this process has written, for [`KeywordIndex::after_write`].
    written: AtomicU64,
}

/// How many written rows apart [`KeywordIndex::after_write`] looks at the store's size.
const WRITE_CHECK: u64 = 1024;

impl KeywordIndex {
    pub(crate) fn new(mode: KeywordIndexMode) -> Self {
        KeywordIndex {
            mode,
            phase: Arc::new(Mutex::new(Phase::Idle)),
            closed: Arc::new(AtomicBool::new(false)),
            written: AtomicU64::new(0),
        }
    }

    /// What a search does first, done ahead of it: starts the build the mode asks for
    /// (in the background for `Auto`) and brings a ready index up to date.
    pub(crate) fn warm(&self, conns: &Arc<Connections>, c: &Connection) -> Result<()> {
        self.ready(conns, c).map(|_| ())
    }

    /// After a committed write of `rows` keyword-indexed rows. Every [`WRITE_CHECK`] rows
    /// an `Auto` index that has not started looks at the store's size and starts building
    /// once it is past the threshold, so that the build overlaps the writes that grew the
    /// store instead of the first searches after it (which FTS5 would answer, slowly on
    /// a large store, while the build took a core). Errors are left to the next search.
    pub(crate) fn after_write(&self, conns: &Arc<Connections>, rows: u64) {
        if rows == 0 || !matches!(self.mode, KeywordIndexMode::Auto { .. }) {
            return;
        }
        let before = self.written.fetch_add(rows, Ordering::Relaxed);
        if before / WRITE_CHECK == (before + rows) / WRITE_CHECK
            || !matches!(*self.phase.lock(), Phase::Idle)
        {
            return;
        }
        let _ = conns.read(|c| self.ready(conns, c));
    }

    /// The index, up to date with `c`'s snapshot, when it is ready; otherwise None, after
    /// starting a build when the mode asks for one.
    fn ready(&self, conns: &Arc<Connections>, c: &Connection) -> Result<Option<Arc<Ready>>> {
        let ready = {
            let mut phase = self.phase.lock();
            match &*phase {
                Phase::Ready(r) => Some(r.clone()),
                Phase::Building | Phase::Failed => return Ok(None),
                Phase::Idle => match self.mode {
                    KeywordIndexMode::Off => return Ok(None),
                    KeywordIndexMode::Eager => {
                        let r = Arc::new(Ready::build(c, &self.closed)?);
                        *phase = Phase::Ready(r.clone());
                        return Ok(Some(r));
                    }
                    KeywordIndexMode::Auto { min_records } => {
                        let size: i64 = log_state(c)?.max_rid.iter().sum();
                        if (size as u64) < min_records {
                            return Ok(None);
                        }
                        *phase = match self.spawn_build(conns.clone()) {
                            Ok(()) => Phase::Building,
                            Err(_) => Phase::Failed,
                        };
                        return Ok(None);
                    }
                },
            }
        };
        let Some(r) = ready else { return Ok(None) };
        match r.sync(c, &self.closed) {
            Ok(true) => Ok(Some(r)),
            // The log was truncated past this index (or migrated down and up), or catching
            // up failed half-way: the index is dropped and built anew, and FTS5 answers
            // meanwhile, so a derived index never fails a search.
            Ok(false) | Err(_) => {
                *self.phase.lock() = Phase::Idle;
                Ok(None)
            }
        }
    }

    /// Starts the background build; the caller holds the phase lock, which the thread
    /// takes only when done.
    fn spawn_build(&self, conns: Arc<Connections>) -> std::io::Result<()> {
        let phase = self.phase.clone();
        let closed = self.closed.clone();
        std::thread::Builder::new()
            .name("agentstore-keyword-index".into())
            .spawn(move || {
                let built = conns.read(|c| Ready::build(c, &closed));
                *phase.lock() = match built {
                    Ok(r) => Phase::Ready(Arc::new(r)),
                    Err(_) => Phase::Failed,
                };
            })
            .map(|_| ())
    }

    /// Keyword candidates from this index, or None when FTS5 must answer (not built,
    /// still building, or a query it cannot answer exactly).
    pub(crate) fn candidates(
        &self,
        conns: &Arc<Connections>,
        c: &Connection,
        tenant: &str,
        q: &KeywordQuery,
    ) -> Result<Option<Vec<Candidate>>> {
        match self.ready(conns, c)? {
            Some(r) => r.candidates(c, tenant, q),
            None => Ok(None),
        }
    }

    /// Documents and bytes in the index (zero when it is not built), for stats.
    pub(crate) fn size(&self) -> (u64, u64) {
        match &*self.phase.lock() {
            Phase::Ready(r) => r.size(),
            _ => (0, 0),
        }
    }

    /// How far the log may be truncated without forcing this process's index to be
    /// rebuilt (None: no index here to protect).
    pub(crate) fn watermark(&self) -> Option<i64> {
        match &*self.phase.lock() {
            Phase::Ready(r) => Some(r.writer.lock().watermark),
            _ => None,
        }
    }
}

impl Drop for KeywordIndex {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Log entries kept past what this process's index has applied, so that other processes'
/// indexes over the same store can usually catch up instead of rebuilding.
const LOG_KEEP: i64 = 100_000;

/// Drops old log entries in the caller's write transaction (maintenance); returns how
/// many. `protect`: this process's watermark, never truncated past.
pub(crate) fn truncate_log(tx: &Connection, protect: Option<i64>) -> Result<u64> {
    let end: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM keyword_log")
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    let mut through = end - LOG_KEEP;
    if let Some(w) = protect {
        through = through.min(w);
    }
    if through <= 0 {
        return Ok(0);
    }
    let n = tx
        .prepare_cached("DELETE FROM keyword_log WHERE seq <= ?1")
        .db()?
        .execute([through])
        .db()?;
    tx.prepare_cached(
        "UPDATE keyword_log_state SET truncated_through = MAX(truncated_through, ?1) WHERE id = 1",
    )
    .db()?
    .execute([through])
    .db()?;
    Ok(n as u64)
}
