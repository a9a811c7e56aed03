//! Ranking metrics, defined as the data READMEs define them so that our numbers and the
//! reference numbers there are comparable: binary relevance everywhere.

use std::collections::HashSet;

/// Ids in ranked order with repeats removed: a document split into several chunks, or a
/// turn returned twice, must count once, as a BEIR run file holds each document once.
pub fn dedup<'a>(ranked: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    ranked.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// nDCG@k with binary gains and a log2 discount (rank 1 discounted by log2(2) = 1); the
/// ideal ranking puts min(k, |relevant|) relevant ids first. 0 when nothing is relevant.
pub fn ndcg_at(ranked: &[&str], relevant: &HashSet<String>, k: usize) -> f64 {
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, id)| relevant.contains(**id))
        .map(|(i, _)| discount(i))
        .sum();
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// |relevant ∩ top k| / |relevant| (LoCoMo's evidence recall and BEIR's Recall@k alike).
pub fn recall_at(ranked: &[&str], relevant: &HashSet<String>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| relevant.contains(**id))
        .count();
    found as f64 / relevant.len() as f64
}

/// 1 / rank of the first relevant id within the top k, 0 when there is none.
pub fn mrr_at(ranked: &[&str], relevant: &HashSet<String>, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| relevant.contains(*id))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Mean of `xs`; NaN for none, so an empty category shows as such rather than as 0.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Median of durations in milliseconds (upper median for an even count).
pub fn p50_ms(latencies: &[std::time::Duration]) -> f64 {
    let mut v: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_by_hand() {
        let rel = set(&["a", "b"]);
        assert_eq!(ndcg_at(&["a", "b", "c"], &rel, 10), 1.0);
        // One hit at rank 2 out of two relevant: (1/log2 3) / (1 + 1/log2 3).
        let expect = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&["x", "a", "y"], &rel, 10) - expect).abs() < 1e-12);
        // The ideal is capped at k.
        assert_eq!(ndcg_at(&["a"], &set(&["a", "b", "c"]), 1), 1.0);
        assert_eq!(ndcg_at(&["x", "a"], &rel, 1), 0.0);
        assert_eq!(ndcg_at(&["a"], &HashSet::new(), 10), 0.0);
    }

    #[test]
    fn recall_mrr_dedup() {
        let rel = set(&["a", "b", "c", "d"]);
        assert_eq!(recall_at(&["a", "x", "b"], &rel, 2), 0.25);
        assert_eq!(recall_at(&["a", "x", "b"], &rel, 3), 0.5);
        assert_eq!(mrr_at(&["x", "y", "c"], &rel, 10), 1.0 / 3.0);
        assert_eq!(mrr_at(&["x", "y", "c"], &rel, 2), 0.0);
        assert_eq!(dedup(["a", "b", "a", "c", "b"]), ["a", "b", "c"]);
        assert_eq!(p50_ms(&[std::time::Duration::from_millis(3)]), 3.0);
    }
}
