//! The evaluation sets as their READMEs lay them out (BEIR SciFact, LoCoMo derived files,
//! TEXMEX vectors), plus the small subsets `--smoke` runs on.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

fn jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// `query-id \t corpus-id \t score` with a header; pairs with a positive score.
fn qrels(path: &Path) -> Result<HashMap<String, HashSet<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [q, d, s] = f[..] else {
            bail!("{}: bad line {line:?}", path.display());
        };
        if s.trim().parse::<f64>().unwrap_or(0.0) > 0.0 {
            out.entry(q.to_owned()).or_default().insert(d.to_owned());
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Deserialize)]
pub struct Doc {
    #[serde(rename = "_id")]
    pub id: String,
    pub title: String,
    pub text: String,
}

impl Doc {
    /// What both reference retrievers indexed and embedded.
    pub fn indexed_text(&self) -> String {
        format!("{} {}", self.title, self.text)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Query {
    #[serde(rename = "_id")]
    pub id: String,
    pub text: String,
}

/// The SciFact test split: docs in corpus order (the reference breaks ties by it), the
/// queries that have test qrels, and those qrels.
pub struct SciFact {
    pub docs: Vec<Doc>,
    pub queries: Vec<Query>,
    pub qrels: HashMap<String, HashSet<String>>,
}

impl SciFact {
    pub fn load(dir: &Path) -> Result<SciFact> {
        let docs: Vec<Doc> = jsonl(&dir.join("corpus.jsonl"))?;
        let qrels = qrels(&dir.join("qrels/test.tsv"))?;
        let queries: Vec<Query> = jsonl::<Query>(&dir.join("queries.jsonl"))?
            .into_iter()
            .filter(|q| qrels.contains_key(&q.id))
            .collect();
        Ok(SciFact {
            docs,
            queries,
            qrels,
        })
    }

    /// The first `queries` test queries and a corpus of their relevant docs topped up with
    /// the first docs in corpus order to `docs`, so every query still has its answers.
    pub fn subset(&self, docs: usize, queries: usize) -> SciFact {
        let queries: Vec<Query> = self.queries.iter().take(queries).cloned().collect();
        let needed: HashSet<&str> = queries
            .iter()
            .flat_map(|q| self.qrels[&q.id].iter().map(String::as_str))
            .collect();
        let mut room = docs.saturating_sub(needed.len());
        let docs = self
            .docs
            .iter()
            .filter(|d| {
                if needed.contains(d.id.as_str()) {
                    return true;
                }
                let take = room > 0;
                room = room.saturating_sub(1);
                take
            })
            .cloned()
            .collect();
        let qrels = queries
            .iter()
            .map(|q| (q.id.clone(), self.qrels[&q.id].clone()))
            .collect();
        SciFact {
            docs,
            queries,
            qrels,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Turn {
    pub conv_id: String,
    pub session: u32,
    /// `D1:3`, what evidence lists name.
    pub dia_id: String,
    pub speaker: String,
    pub text: String,
    pub session_date_time: String,
    #[serde(default)]
    pub blip_caption: Option<String>,
}

impl Turn {
    /// The turn as the README's reference retrievers saw it, and as a transcript shows it:
    /// questions name the person ("When did Caroline ..."), so the name must be in the text.
    pub fn indexed_text(&self) -> String {
        format!("{}: {}", self.speaker, self.text)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct QaItem {
    pub id: String,
    pub conv_id: String,
    pub question: String,
    pub category: u8,
    /// Normalised dia_ids (`D8:6`); empty for 4 questions, which are skipped.
    pub evidence: Vec<String>,
}

pub struct LoCoMo {
    /// In file order: conversation, session, turn.
    pub turns: Vec<Turn>,
    pub queries: Vec<QaItem>,
}

impl LoCoMo {
    pub fn load(dir: &Path) -> Result<LoCoMo> {
        Ok(LoCoMo {
            turns: jsonl(&dir.join("turns.jsonl"))?,
            queries: jsonl(&dir.join("queries.jsonl"))?,
        })
    }

    /// Conversation ids in file order.
    pub fn conversations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.turns {
            if out.last() != Some(&t.conv_id) {
                out.push(t.conv_id.clone());
            }
        }
        out
    }

    /// The first `sessions` sessions of the first conversation and up to `queries`
    /// questions whose evidence lies entirely in them.
    pub fn subset(&self, sessions: u32, queries: usize) -> LoCoMo {
        let conv = self.turns[0].conv_id.clone();
        let turns: Vec<Turn> = self
            .turns
            .iter()
            .filter(|t| t.conv_id == conv && t.session <= sessions)
            .cloned()
            .collect();
        let present: HashSet<&str> = turns.iter().map(|t| t.dia_id.as_str()).collect();
        let queries = self
            .queries
            .iter()
            .filter(|q| {
                q.conv_id == conv
                    && !q.evidence.is_empty()
                    && q.evidence.iter().all(|e| present.contains(e.as_str()))
            })
            .take(queries)
            .cloned()
            .collect();
        LoCoMo { turns, queries }
    }
}

/// TEXMEX `.fvecs`: rows of a little-endian i32 dimension followed by that many f32.
pub fn read_fvecs(path: &Path) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let word = |i: usize| -> Result<[u8; 4]> {
            bytes
                .get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .with_context(|| format!("{} truncated at byte {i}", path.display()))
        };
        let dim = i32::from_le_bytes(word(at)?);
        if dim <= 0 {
            bail!("{}: row {} has dimension {dim}", path.display(), rows.len());
        }
        at += 4;
        let row = (0..dim as usize)
            .map(|j| word(at + 4 * j).map(f32::from_le_bytes))
            .collect::<Result<Vec<f32>>>()?;
        at += 4 * dim as usize;
        rows.push(row);
    }
    Ok(rows)
}

/// Ids of `ids.txt`, one per row of the matching `.fvecs`.
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}
