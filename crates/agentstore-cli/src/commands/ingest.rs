//! `ingest`: text, Markdown and JSON Lines files as documents for retrieval.
//!
//! Three steps: find the files (walk directories, skip what is not a document), check
//! every file completely (UTF-8, sizes, every JSON Lines line), then read them again and
//! store the documents in batches with `Store::put_documents`. Checking everything first
//! means bad input is reported before anything is written; reading twice instead of
//! holding the documents keeps memory to one batch however large the tree.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use agentstore::{DocumentOutcome, Error, Limits, NewDocument};
use anyhow::Context;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::open;
use crate::config::{Config, IngestRequest};
use crate::output::{Outcome, human_bytes};

/// File formats, decided by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    Text,
    Markdown,
    Jsonl,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The document type when neither the line nor `--doc-type` gives one.
    fn doc_type(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Jsonl => "jsonl",
        }
    }
}

const SUPPORTED: &str = ".txt, .text, .md, .markdown, .jsonl or .ndjson";

/// Why a file was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum SkipReason {
    /// Name starts with a dot (a hidden directory counts once, its contents not at all).
    Hidden,
    /// Not one of the supported extensions.
    UnsupportedType,
    /// Matches no `--glob`.
    Glob,
    /// No text (zero bytes, only whitespace, or a JSON Lines file without lines).
    Empty,
    /// Reached a second time (through a symlink or a repeated PATH).
    Duplicate,
    /// A symlink whose target lies outside the directory being walked.
    SymlinkOutside,
    /// A symlink whose target does not exist.
    BrokenSymlink,
    /// A socket, FIFO or device: reading one could block forever.
    SpecialFile,
}

impl SkipReason {
    fn describe(self) -> &'static str {
        match self {
            SkipReason::Hidden => "hidden",
            SkipReason::UnsupportedType => "unsupported type",
            SkipReason::Glob => "not matching --glob",
            SkipReason::Empty => "empty",
            SkipReason::Duplicate => "duplicate",
            SkipReason::SymlinkOutside => "symlink out of the directory",
            SkipReason::BrokenSymlink => "broken symlink",
            SkipReason::SpecialFile => "not a regular file",
        }
    }
}

#[derive(Debug, Serialize)]
struct Skipped {
    path: PathBuf,
    reason: SkipReason,
}

/// A file to read: its canonical path, which is also its documents' source path.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    source: String,
    format: Format,
    bytes: u64,
}

/// What the walk found.
#[derive(Debug, Default)]
struct Found {
    files: Vec<Candidate>,
    skipped: Vec<Skipped>,
    seen: HashSet<PathBuf>,
    visited_dirs: HashSet<PathBuf>,
}

impl Found {
    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        self.skipped.push(Skipped { path, reason });
    }

    fn add(&mut self, path: PathBuf, bytes: u64, format: Format) -> anyhow::Result<()> {
        if !self.seen.insert(path.clone()) {
            self.skip(path, SkipReason::Duplicate);
        } else if bytes == 0 {
            self.skip(path, SkipReason::Empty);
        } else {
            // Source paths are text in the store; a lossy conversion could make two
            // files share one path and replace each other.
            let source = path
                .to_str()
                .ok_or_else(|| Error::invalid("path", format!("{} is not UTF-8", path.display())))?
                .to_owned();
            self.files.push(Candidate {
                path,
                source,
                format,
                bytes,
            });
        }
        Ok(())
    }
}

fn find(req: &IngestRequest, globs: &[Glob]) -> anyhow::Result<Found> {
    let mut found = Found::default();
    for given in &req.paths {
        let not_found = || Error::not_found("path", given.display().to_string());
        let canonical = match fs_err::canonicalize(given) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found().into()),
            Err(e) => return Err(e.into()),
        };
        let meta = fs_err::metadata(&canonical)?;
        if meta.is_dir() {
            found.visited_dirs.insert(canonical.clone());
            walk(&canonical, &canonical, "", globs, &mut found)?;
        } else if meta.is_file() {
            // A file named on the command line is wanted: an unknown type is an error
            // rather than a silent skip, and --glob does not apply.
            let format = Format::of(&canonical).ok_or_else(|| {
                Error::invalid(
                    "path",
                    format!("{}: not a {SUPPORTED} file", given.display()),
                )
            })?;
            found.add(canonical, meta.len(), format)?;
        } else {
            return Err(Error::invalid(
                "path",
                format!("{} is neither a file nor a directory", given.display()),
            )
            .into());
        }
    }
    Ok(found)
}

/// Walks `dir` (below `root`) in sorted order. `rel` is `dir` relative to `root` with
/// `/` separators and a trailing `/`, for matching globs.
fn walk(
    root: &Path,
    dir: &Path,
    rel: &str,
    globs: &[Glob],
    found: &mut Found,
) -> anyhow::Result<()> {
    let mut entries = fs_err::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            found.skip(path, SkipReason::Hidden);
            continue;
        }
        let (target, meta) = if entry.file_type()?.is_symlink() {
            let Ok(target) = fs_err::canonicalize(&path) else {
                found.skip(path, SkipReason::BrokenSymlink);
                continue;
            };
            if !target.starts_with(root) {
                found.skip(path, SkipReason::SymlinkOutside);
                continue;
            }
            let meta = fs_err::metadata(&target)?;
            (target, meta)
        } else {
            // `dir` is canonical and this entry is no symlink, so the path is too.
            let meta = entry.metadata()?;
            (path.clone(), meta)
        };
        let rel_path = format!("{rel}{name}");
        if meta.is_dir() {
            // A symlink back up the tree would otherwise be walked forever.
            if found.visited_dirs.insert(target.clone()) {
                walk(root, &target, &format!("{rel_path}/"), globs, found)?;
            } else {
                found.skip(path, SkipReason::Duplicate);
            }
        } else if meta.is_file() {
            match Format::of(&target) {
                None => found.skip(path, SkipReason::UnsupportedType),
                Some(_) if !globs.is_empty() && !globs.iter().any(|g| g.matches(&rel_path)) => {
                    found.skip(path, SkipReason::Glob)
                }
                Some(format) => found.add(target, meta.len(), format)?,
            }
        } else {
            found.skip(path, SkipReason::SpecialFile);
        }
    }
    Ok(())
}

/// A shell-style pattern: `*` and `?` within one path segment, `**` across segments
/// (`**/` also matches no directory at all). Without a `/`, the pattern is matched
/// against the file name; with one, against the path below the walked directory.
#[derive(Debug)]
struct Glob {
    tokens: Vec<Token>,
    whole_path: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Stars,
    StarsSlash,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    if chars.get(i + 2) == Some(&'/') {
                        tokens.push(Token::StarsSlash);
                        i += 3;
                    } else {
                        tokens.push(Token::Stars);
                        i += 2;
                    }
                    // `***` means the same as `**`.
                    while chars.get(i) == Some(&'*') {
                        i += 1;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Glob {
            tokens,
            whole_path: pattern.contains('/'),
        }
    }

    /// `rel_path` uses `/` separators and is relative to the walked directory.
    fn matches(&self, rel_path: &str) -> bool {
        let subject = if self.whole_path {
            rel_path
        } else {
            rel_path.rsplit('/').next().unwrap_or(rel_path)
        };
        let s: Vec<char> = subject.chars().collect();
        let p = &self.tokens;
        // m[i][j]: tokens[i..] match s[j..]. Dynamic programming keeps patterns with
        // many stars linear in the name instead of exponential.
        let mut m = vec![vec![false; s.len() + 1]; p.len() + 1];
        m[p.len()][s.len()] = true;
        for i in (0..p.len()).rev() {
            for j in (0..=s.len()).rev() {
                let here = s.get(j).copied();
                m[i][j] = match p[i] {
                    Token::Char(c) => here == Some(c) && m[i + 1][j + 1],
                    Token::Any => here.is_some_and(|c| c != '/') && m[i + 1][j + 1],
                    Token::Star => m[i + 1][j] || (here.is_some_and(|c| c != '/') && m[i][j + 1]),
                    Token::Stars => m[i + 1][j] || (here.is_some() && m[i][j + 1]),
                    // Zero directories, or any text up to and including a `/`.
                    Token::StarsSlash => {
                        m[i + 1][j]
                            || (here.is_some()
                                && (m[i][j + 1] || (here == Some('/') && m[i + 1][j + 1])))
                    }
                };
            }
        }
        m[0][0]
    }
}

/// One line of a JSON Lines file. Unknown fields are ignored, so datasets with extra
/// columns load as they are.
#[derive(Debug, Deserialize)]
struct Line {
    text: Option<String>,
    content: Option<String>,
    id: Option<LineId>,
    title: Option<String>,
    source: Option<String>,
    metadata: Option<Value>,
    doc_type: Option<String>,
}

/// Ids are often numbers in exported datasets.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LineId {
    Text(String),
    Number(serde_json::Number),
}

/// The first level-1 ATX heading outside code fences.
fn markdown_title(content: &str) -> Option<String> {
    let mut fence: Option<&str> = None;
    for line in content.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            continue;
        }
        let line = line.trim_start_matches(' ');
        if let Some(open) = fence {
            if line.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if line.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if line.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ").or_else(|| line.strip_prefix("#\t")) {
            // A closing sequence of `#`s is not part of the heading.
            let title = rest.trim().trim_end_matches('#').trim_end();
            if !title.is_empty() {
                return Some(title.to_owned());
            }
        }
    }
    None
}

fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// Calls `each` with every document of `file` and, for JSON Lines, its line number.
/// Used by both the check and the write pass, so both see the same documents.
fn documents(
    file: &Candidate,
    req: &IngestRequest,
    limits: &Limits,
    bar: &ProgressBar,
    each: &mut dyn FnMut(Option<u64>, NewDocument) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let base = |content: String| {
        let mut d = NewDocument::new(content);
        d.namespace = req.namespace.clone();
        d.chunking = req.chunking;
        d
    };
    match file.format {
        Format::Text | Format::Markdown => {
            // Checked before reading, so a huge file is refused without loading it.
            too_large(
                "document",
                usize::try_from(file.bytes).unwrap_or(usize::MAX),
                limits.max_document_bytes,
            )
            .with_context(|| file.source.clone())?;
            let bytes = fs_err::read(&file.path)?;
            bar.inc(bytes.len() as u64);
            let text = String::from_utf8(bytes)
                .map_err(|e| Error::invalid("content", format!("is not UTF-8 text ({e})")))
                .with_context(|| file.source.clone())?;
            let content = strip_bom(&text);
            if content.trim().is_empty() {
                return Ok(());
            }
            let stem = file
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            let title = match file.format {
                Format::Markdown => markdown_title(content).or(stem),
                _ => stem,
            };
            let mut d = base(content.to_owned());
            d.title = title;
            d.doc_type = Some(
                req.doc_type
                    .clone()
                    .unwrap_or_else(|| file.format.doc_type().to_owned()),
            );
            d.source_path = Some(file.source.clone());
            each(None, d).with_context(|| file.source.clone())
        }
        Format::Jsonl => {
            let mut reader = BufReader::new(fs_err::File::open(&file.path)?);
            let mut buf = Vec::new();
            let mut n = 0u64;
            loop {
                buf.clear();
                let read = reader.read_until(b'\n', &mut buf)?;
                if read == 0 {
                    return Ok(());
                }
                bar.inc(read as u64);
                n += 1;
                let at = || format!("{} line {n}", file.source);
                let text = std::str::from_utf8(&buf)
                    .map_err(|e| Error::invalid("line", format!("is not UTF-8 text ({e})")))
                    .with_context(at)?;
                let text = if n == 1 { strip_bom(text) } else { text };
                if text.trim().is_empty() {
                    continue;
                }
                let d = jsonl_document(text, n, file, req, base).with_context(at)?;
                each(Some(n), d).with_context(at)?;
            }
        }
    }
}

fn jsonl_document(
    text: &str,
    n: u64,
    file: &Candidate,
    req: &IngestRequest,
    base: impl Fn(String) -> NewDocument,
) -> agentstore::Result<NewDocument> {
    let line: Line = serde_json::from_str(text)?;
    let content = match (line.text, line.content) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "line",
                "has both \"text\" and \"content\"; give one",
            ));
        }
        (None, None) => {
            return Err(Error::invalid(
                "line",
                "has neither \"text\" nor \"content\"",
            ));
        }
    };
    let key = match line.id {
        Some(LineId::Text(id)) if id.is_empty() => {
            return Err(Error::invalid("id", "must not be empty"));
        }
        Some(LineId::Text(id)) => id,
        Some(LineId::Number(id)) => id.to_string(),
        None => n.to_string(),
    };
    let mut d = base(content);
    d.title = line.title;
    d.source_url = line.source;
    d.doc_type = Some(
        line.doc_type
            .or_else(|| req.doc_type.clone())
            .unwrap_or_else(|| Format::Jsonl.doc_type().to_owned()),
    );
    if let Some(m) = line.metadata {
        d.metadata = m;
    }
    d.source_path = Some(format!("{}#{key}", file.source));
    Ok(d)
}

fn too_large(field: &str, size: usize, limit: usize) -> agentstore::Result<()> {
    if size > limit {
        return Err(Error::TooLarge {
            field: field.into(),
            size,
            limit,
        });
    }
    Ok(())
}

/// The store's own checks on a document, run in the check pass so that a bad document
/// in the last file stops the run before the first is written. The store checks again.
fn preflight(d: &NewDocument, limits: &Limits) -> agentstore::Result<()> {
    if d.content.trim().is_empty() {
        return Err(Error::invalid("text", "must not be empty"));
    }
    too_large("document", d.content.len(), limits.max_document_bytes)?;
    for (field, v) in [
        ("title", &d.title),
        ("source_path", &d.source_path),
        ("source", &d.source_url),
        ("doc_type", &d.doc_type),
    ] {
        if let Some(v) = v {
            too_large(field, v.len(), limits.max_short_field)?;
        }
    }
    if let Some(t) = &d.doc_type
        && (t.trim().is_empty() || t.chars().any(char::is_control))
    {
        return Err(Error::invalid(
            "doc_type",
            "must be non-empty text without control characters",
        ));
    }
    if !d.metadata.is_object() {
        return Err(Error::invalid("metadata", "must be a JSON object"));
    }
    too_large(
        "metadata",
        serde_json::to_vec(&d.metadata).map_or(usize::MAX, |b| b.len()),
        limits.max_json_bytes,
    )
}

/// A byte progress bar, as `import` and `export` show.
fn progress(cfg: &Config, len: u64) -> ProgressBar {
    crate::output::progress(
        cfg.json,
        Some(len),
        "{spinner} {prefix} [{bar:40}] {bytes}/{total_bytes} {wide_msg}",
    )
}

#[derive(Debug, Serialize)]
struct DocReport {
    source_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(flatten)]
    outcome: DocumentOutcome,
}

#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    format: Format,
    bytes: u64,
    documents: Vec<DocReport>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    created: u64,
    replaced: u64,
    unchanged: u64,
}

pub fn ingest(cfg: &Config, req: &IngestRequest) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    let limits = store.limits().clone();
    let globs: Vec<Glob> = req.globs.iter().map(|g| Glob::new(g)).collect();
    let mut found = find(req, &globs)?;

    let total: u64 = found.files.iter().map(|f| f.bytes).sum();
    let bar = progress(cfg, total);

    // Check pass: nothing is written.
    bar.set_prefix("checking");
    let mut empty = Vec::new();
    for (i, file) in found.files.iter().enumerate() {
        bar.set_message(file.source.clone());
        let mut lines: HashMap<String, Option<u64>> = HashMap::new();
        documents(file, req, &limits, &bar, &mut |line, d| {
            preflight(&d, &limits)?;
            let path = d.source_path.unwrap_or_default();
            if let Some(first) = lines.insert(path, line) {
                // Two lines with one source path would replace each other in one run.
                return Err(Error::invalid(
                    "id",
                    format!(
                        "the same as on line {} (each line needs its own id)",
                        first.unwrap_or_default()
                    ),
                )
                .into());
            }
            Ok(())
        })?;
        if lines.is_empty() {
            empty.push(i);
        }
    }
    for i in empty.into_iter().rev() {
        let file = found.files.remove(i);
        found.skip(file.path, SkipReason::Empty);
    }

    // Write pass.
    bar.set_prefix("ingesting");
    bar.set_position(0);
    bar.set_length(found.files.iter().map(|f| f.bytes).sum());
    let scope = cfg.scope();
    let mut counts = Counts::default();
    let mut chunks = 0u64;
    let mut bytes = 0u64;
    let mut files: Vec<FileReport> = Vec::with_capacity(found.files.len());
    // Documents are written in batches across files, so that many small documents share
    // the embedder's batches and one commit; the check pass has already refused what
    // would fail.
    let mut batch = Batch::default();
    let mut flush = |batch: &mut Batch, files: &mut Vec<FileReport>| -> anyhow::Result<()> {
        let pending = std::mem::take(batch);
        if pending.docs.is_empty() {
            return Ok(());
        }
        let outcomes = store.put_documents(&scope, pending.docs)?;
        for ((file, source_path, line), outcome) in pending.places.into_iter().zip(outcomes) {
            match &outcome {
                DocumentOutcome::Created { chunks: n, .. } => {
                    counts.created += 1;
                    chunks += *n as u64;
                }
                DocumentOutcome::Replaced { chunks: n, .. } => {
                    counts.replaced += 1;
                    chunks += *n as u64;
                }
                DocumentOutcome::Unchanged { .. } => counts.unchanged += 1,
            }
            files[file].documents.push(DocReport {
                source_path,
                line,
                outcome,
            });
        }
        Ok(())
    };
    for file in &found.files {
        bar.set_message(file.source.clone());
        files.push(FileReport {
            path: file.source.clone(),
            format: file.format,
            bytes: file.bytes,
            documents: Vec::new(),
        });
        let index = files.len() - 1;
        documents(file, req, &limits, &bar, &mut |line, d| {
            batch.bytes += d.content.len();
            batch
                .places
                .push((index, d.source_path.clone().unwrap_or_default(), line));
            batch.docs.push(d);
            if batch.full() {
                flush(&mut batch, &mut files)?;
            }
            Ok(())
        })?;
        bytes += file.bytes;
    }
    flush(&mut batch, &mut files)?;
    bar.finish_and_clear();

    let mut skipped: BTreeMap<SkipReason, u64> = BTreeMap::new();
    for s in &found.skipped {
        *skipped.entry(s.reason).or_default() += 1;
    }
    let namespace = if req.namespace == agentstore::Namespace::root() {
        "/".to_owned()
    } else {
        req.namespace.display_path()
    };
    let mut text = format!(
        "ingested {} file{} ({}) into namespace {namespace}: {} created, {} replaced, \
         {} unchanged; {chunks} chunks written\n",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        human_bytes(bytes),
        documents_phrase(counts.created),
        counts.replaced,
        counts.unchanged,
    );
    if !found.skipped.is_empty() {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|(r, n)| format!("{n} {}", r.describe()))
            .collect();
        text.push_str(&format!(
            "skipped {} file{}: {}\n",
            found.skipped.len(),
            if found.skipped.len() == 1 { "" } else { "s" },
            reasons.join(", ")
        ));
    }
    Outcome::new(
        json!({
            "namespace": namespace,
            "files_seen": files.len() + found.skipped.len(),
            "files_read": files.len(),
            "files_skipped": found.skipped.len(),
            "bytes_read": bytes,
            "documents": counts,
            "chunks_written": chunks,
            "skipped": skipped,
            "files": files,
            "skipped_files": found.skipped,
        }),
        text,
    )
}

/// Documents read but not yet written, with where each came from: (index of its file
/// report, source path, line).
#[derive(Default)]
struct Batch {
    docs: Vec<NewDocument>,
    places: Vec<(usize, String, Option<u64>)>,
    bytes: usize,
}

impl Batch {
    /// Documents per write; their chunks are embedded in one call.
    const DOCS: usize = 256;
    /// Bytes of content per write (about a hundred chunks of the default size), which
    /// bounds memory and the work a failed write loses.
    const BYTES: usize = 256 * 1024;

    fn full(&self) -> bool {
        self.docs.len() >= Self::DOCS || self.bytes >= Self::BYTES
    }
}

fn documents_phrase(created: u64) -> String {
    format!("{created} document{}", if created == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| Glob::new(p).matches(s);
        assert!(m("*.md", "a.md"));
        assert!(m("*.md", "docs/deep/a.md"), "no slash: the file name");
        assert!(!m("*.md", "a.mdx"));
        assert!(m("?.txt", "a.txt") && !m("?.txt", "ab.txt"));
        assert!(m("docs/*.md", "docs/a.md"));
        assert!(!m("docs/*.md", "docs/x/a.md"), "* stays in one segment");
        assert!(m("docs/**/*.md", "docs/a.md"), "**/ may match nothing");
        assert!(m("docs/**/*.md", "docs/x/y/a.md"));
        assert!(m("**/*.md", "a.md") && m("**/*.md", "x/a.md"));
        assert!(m("docs/**", "docs/x/y.txt"));
        assert!(!m("docs/**/*.md", "other/a.md"));
        assert!(m(
            "*a*a*a*a*b",
            &"a".repeat(60).chars().chain(['b']).collect::<String>()
        ));
    }

    #[test]
    fn markdown_titles() {
        assert_eq!(
            markdown_title("intro\n# Title #\n# Second").as_deref(),
            Some("Title")
        );
        assert_eq!(
            markdown_title("```sh\n# a comment\n```\n## Sub\n# Real").as_deref(),
            Some("Real")
        );
        assert_eq!(markdown_title("#hashtag\n    # code"), None);
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/B.MD")), Some(Format::Markdown));
        assert_eq!(Format::of(Path::new("x.ndjson")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("x.text")), Some(Format::Text));
        assert_eq!(Format::of(Path::new("x.pdf")), None);
        assert_eq!(Format::of(Path::new("README")), None);
    }
}
