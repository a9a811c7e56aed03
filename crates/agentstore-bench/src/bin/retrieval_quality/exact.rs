//! Reference retrievers outside the store, written to the letter of the data READMEs
//! (exact search, ties broken by corpus order). They check this binary's metric code: if
//! they reproduce the README numbers, a gap between the store and the README is the
//! store's, not the scoring's.

use std::collections::HashMap;

/// Lowercased runs of Python's `\w` (letters, digits, underscore), no stemming and no
/// stopwords: the README's BM25 tokenisation.
pub fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Okapi BM25 over an in-memory inverted index, Lucene's IDF
/// `ln(1 + (N − n + 0.5) / (n + 0.5))`, which is never negative.
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u32)>>,
    doc_len: Vec<f64>,
    avg_len: f64,
    k1: f64,
    b: f64,
}

impl Bm25 {
    pub fn new<'a>(docs: impl IntoIterator<Item = &'a str>, k1: f64, b: f64) -> Bm25 {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut doc_len = Vec::new();
        for (i, text) in docs.into_iter().enumerate() {
            let toks = tokens(text);
            doc_len.push(toks.len() as f64);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in toks {
                *tf.entry(t).or_default() += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((i as u32, n));
            }
        }
        let avg_len = doc_len.iter().sum::<f64>() / doc_len.len().max(1) as f64;
        Bm25 {
            postings,
            doc_len,
            avg_len,
            k1,
            b,
        }
    }

    /// A score per document. A query word that appears twice counts twice, as in a
    /// Lucene/Pyserini query built from the text.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let n = self.doc_len.len() as f64;
        let mut s = vec![0.0; self.doc_len.len()];
        for t in tokens(query) {
            let Some(list) = self.postings.get(&t) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, tf) in list {
                let tf = tf as f64;
                let norm =
                    self.k1 * (1.0 - self.b + self.b * self.doc_len[d as usize] / self.avg_len);
                s[d as usize] += idf * tf * (self.k1 + 1.0) / (tf + norm);
            }
        }
        s
    }
}

/// Dot products of a unit query with unit rows: their cosines.
pub fn cosine_scores(query: &[f32], rows: &[Vec<f32>]) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(query)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        })
        .collect()
}

/// The best `k` indexes by score, ties broken by the lower index (corpus order).
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Reciprocal rank fusion of ranked index lists, `Σ 1 / (k + rank)`, ranks from 1; the
/// result holds every index of any list, best first, ties by the lower index.
pub fn rrf(lists: &[Vec<usize>], k: f64, n: usize) -> Vec<usize> {
    let mut fused = vec![0.0; n];
    let mut seen = vec![false; n];
    for list in lists {
        for (rank, &i) in list.iter().enumerate() {
            fused[i] += 1.0 / (k + (rank + 1) as f64);
            seen[i] = true;
        }
    }
    let mut out = top_k(&fused, n);
    out.retain(|&i| seen[i]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_prefers_rare_words_and_breaks_ties_by_order() {
        let docs = ["the cat sat", "the dog sat", "the cat ran far away"];
        let bm = Bm25::new(docs, 1.2, 0.75);
        let top = top_k(&bm.scores("cat"), 3);
        // Both cat docs first, the shorter one ahead; the tie-free dog doc last.
        assert_eq!(top, [0, 2, 1]);
        assert_eq!(top_k(&bm.scores("zebra"), 3), [0, 1, 2]);
        assert_eq!(
            tokens("Don't STOP_now, 3D!"),
            ["don", "t", "stop_now", "3d"]
        );
    }

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        let fused = rrf(&[vec![2, 0], vec![0, 1]], 60.0, 4);
        // 0 is 2nd and 1st, 2 is 1st only, 1 is 2nd only, 3 is in no list.
        assert_eq!(fused, [0, 2, 1]);
    }
}
