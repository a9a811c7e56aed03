//! Where the model and the shared data live, and the model loaded once per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use agentstore_embed::BertEmbedder;

/// `../shared/data` beside the workspace.
pub fn shared_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// `$AGENTSTORE_MODEL_DIR`, else `<workspace>/.models/all-MiniLM-L6-v2`, where
/// scripts/fetch-model.sh puts the files.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("AGENTSTORE_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2"),
    }
}

/// Fails (never skips) when the model is missing: these tests are the proof that the local
/// embedder matches sentence-transformers.
pub fn require_model_dir() -> PathBuf {
    let dir = model_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 not found in {}: run scripts/fetch-model.sh first \
         (or point AGENTSTORE_MODEL_DIR at a directory holding config.json, tokenizer.json \
         and model.safetensors)",
        dir.display()
    );
    dir
}

/// all-MiniLM-L6-v2 with default options, loaded once and shared by the tests.
pub fn minilm() -> &'static BertEmbedder {
    static MODEL: OnceLock<BertEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = require_model_dir();
        BertEmbedder::load(&dir)
            .unwrap_or_else(|e| panic!("loading the model from {}: {e}", dir.display()))
    })
}
