//! Sentences per second of the local all-MiniLM-L6-v2 embedder on this machine.
//!
//! Embeds the first N SciFact queries (short sentences, ~20 tokens) from
//! ../shared/data/scifact/queries.jsonl after one warm-up batch, and prints the rate.
//!
//! Usage: cargo run -p agentstore-embed --example throughput -- [SENTENCES] [BATCH_SIZE]
//! (defaults 1000 and 32; the model directory is $AGENTSTORE_MODEL_DIR or
//! .models/all-MiniLM-L6-v2, see scripts/fetch-model.sh). Dependencies are optimised even in
//! the dev profile, so a debug build measures nearly release speed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agentstore_embed::{BertEmbedder, BertEmbedderOptions, Embedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sentences: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let batch_size: usize = args.next().map_or(Ok(32), |a| a.parse())?;

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = std::env::var_os("AGENTSTORE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".models/all-MiniLM-L6-v2"));
    let queries = workspace.join("../shared/data/scifact/queries.jsonl");

    let mut texts = Vec::with_capacity(sentences);
    for line in BufReader::new(std::fs::File::open(&queries)?).lines() {
        let query: serde_json::Value = serde_json::from_str(&line?)?;
        texts.push(query["text"].as_str().unwrap_or_default().to_owned());
    }
    // queries.jsonl has 1,109 lines; cycle through them for larger runs.
    let texts: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .cycle()
        .take(sentences)
        .collect();

    let embedder = BertEmbedder::load_with(
        &model_dir,
        BertEmbedderOptions {
            batch_size,
            ..BertEmbedderOptions::default()
        },
    )?;
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.count_tokens(t))
        .sum::<Result<_, _>>()?;
    embedder.embed(&texts[..batch_size.min(texts.len())])?;

    let started = Instant::now();
    let vectors = embedder.embed(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), texts.len());
    println!(
        "{} sentences (mean {:.1} tokens) at batch {batch_size}: {seconds:.2} s, {:.0} sentences/s",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        texts.len() as f64 / seconds
    );
    Ok(())
}
