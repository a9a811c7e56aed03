//! `search`: one search over memories, chunks and events; `reembed`: vectors for every
//! record under the configured model.

use agentstore::search::{HitRecord, ScoreComponents, SearchHit, SearchRequest};

use super::open;
use crate::config::Config;
use crate::output::{Outcome, Table, clip};

/// Widest text column, so a row with its score breakdown fits a wide terminal.
const TEXT_WIDTH: usize = 50;

pub fn search(cfg: &Config, req: SearchRequest) -> anyhow::Result<Outcome> {
    let hits = open(cfg)?.search(&cfg.scope(), req)?;
    let mut t = Table::new(&["RANK", "TARGET", "ID", "SCORE", "COMPONENTS", "TEXT"]);
    for (i, h) in hits.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            h.target.to_string(),
            h.id.clone(),
            num(h.score),
            components(&h.components),
            clip(&text(h), TEXT_WIDTH),
        ]);
    }
    let mut text = t.render();
    if hits.is_empty() {
        text = "(no matches)\n".to_owned();
    }
    Outcome::new(&hits, text)
}

/// Four decimals, or scientific notation for the tiny scores a long recency decay gives.
fn num(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// `bm25 3.2100 #1, fused 0.0164, recency 0.5000`: each part of the score that is present.
fn components(c: &ScoreComponents) -> String {
    let mut parts = Vec::new();
    if let Some(k) = c.keyword {
        let rank = c.keyword_rank.map(|r| format!(" #{r}")).unwrap_or_default();
        parts.push(format!("bm25 {}{rank}", num(k)));
    }
    if let Some(v) = c.vector {
        let rank = c.vector_rank.map(|r| format!(" #{r}")).unwrap_or_default();
        parts.push(format!("vector {}{rank}", num(v)));
    }
    parts.push(format!("fused {}", num(c.fused)));
    if let Some(r) = c.recency {
        parts.push(format!("recency {}", num(r)));
    }
    if let Some(i) = c.importance {
        parts.push(format!("importance {}", num(i)));
    }
    parts.join(", ")
}

/// What to show of the matched record in one line.
fn text(h: &SearchHit) -> String {
    match &h.record {
        HitRecord::Memory(m) => m.content.clone(),
        HitRecord::Chunk(c) => c.content.clone(),
        HitRecord::Event(e) => match (&e.content, &e.tool_name) {
            (Some(c), _) if !c.is_empty() => c.clone(),
            (_, Some(tool)) => format!("{tool}()"),
            _ => String::new(),
        },
    }
}

/// `reembed`: every tenant's records without a vector of the configured model are
/// embedded, then other models' vectors are deleted (unless `keep_old`).
pub fn reembed(cfg: &Config, keep_old: bool, batch: usize) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    let Some(model) = store.vector_model().map(|m| m.id.clone()) else {
        anyhow::bail!(agentstore::Error::Config(
            "reembed needs an embedder: --model-dir or --embedding-url".into()
        ));
    };
    let bar = crate::output::progress(cfg.json, None, "{spinner} embedding: {pos} record(s)");
    let mut reports = Vec::new();
    let mut dropped = 0u64;
    let mut done_before = 0u64;
    for tenant in store.list_tenants()? {
        let scope = agentstore::Scope::new(&tenant.id, &cfg.actor)
            .with_context(serde_json::json!({ "command": "reembed" }));
        let report = store.embed_missing(&scope, batch, &mut |n| {
            bar.set_position(done_before + n);
        })?;
        done_before += report.embedded.values().sum::<u64>();
        if !keep_old {
            dropped += store.drop_other_vector_models(&scope)?;
        }
        let values =
            serde_json::json!({"model": model, "embedded": report.embedded, "keep_old": keep_old});
        store.audit_action(&scope, "vectors.reembed", "vectors", &model, &values)?;
        reports.push(serde_json::json!({"tenant": tenant.id, "embedded": report.embedded}));
    }
    bar.finish_and_clear();
    let text = format!(
        "embedded {done_before} record(s) with {model} in {} tenant(s); deleted {dropped} vector(s) of other models\n",
        reports.len()
    );
    Outcome::new(
        serde_json::json!({"model": model, "tenants": reports, "embedded": done_before, "dropped": dropped}),
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_components_read_well() {
        assert_eq!(num(1.0 / 61.0), "0.0164");
        assert_eq!(num(0.0), "0.0000");
        assert_eq!(num(1.6e-5), "1.600e-5");
        let c = ScoreComponents {
            keyword: Some(3.21),
            keyword_rank: Some(1),
            fused: 1.0 / 61.0,
            recency: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            components(&c),
            "bm25 3.2100 #1, fused 0.0164, recency 0.5000"
        );
    }
}
