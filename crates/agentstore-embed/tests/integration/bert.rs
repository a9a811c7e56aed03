//! The local BERT embedder against sentence-transformers (reference numbers from
//! ../shared/data/MODELS.md and ann-scifact-minilm/base.fvecs), and its error paths.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use agentstore_embed::{BertEmbedder, BertEmbedderOptions, Cached, EmbedError, Embedder, cosine};

use crate::common::{minilm, require_model_dir, shared_data};

const S1: &str = "The quick brown fox jumps over the lazy dog.";
const S2: &str = "Caroline went to the LGBTQ support group on 7 May 2023.";
const S3: &str = "How long did I wait for the decision on my asylum application?";

fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "{what}: dim {i} is {a}, sentence-transformers has {e}"
        );
    }
}

#[test]
fn token_ids_match_sentence_transformers() {
    let ids = minilm().token_ids(S1).unwrap();
    assert_eq!(
        ids,
        [
            101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102
        ]
    );
    assert_eq!(minilm().count_tokens(S1).unwrap(), 12);
}

#[test]
fn reference_sentences_match_sentence_transformers() {
    let model = minilm();
    let info = model.model();
    assert_eq!(info.id, "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(info.dimension, 384);
    assert_eq!(info.max_tokens, Some(256));

    let v = model.embed(&[S1, S2, S3]).unwrap();
    assert_eq!(v.len(), 3);
    for vector in &v {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_close(
        &v[0][..5],
        &[0.0439335, 0.0589344, 0.0481784, 0.0775481, 0.0267444],
        1e-4,
        "s1",
    );
    assert_close(
        &v[1][..5],
        &[-0.0628689, 0.0003151, -0.0106600, 0.0822363, -0.0588183],
        1e-4,
        "s2",
    );
    assert_close(
        &v[2][..5],
        &[0.0632149, 0.0431891, 0.0019431, -0.0133895, 0.0738510],
        1e-4,
        "s3",
    );
    assert_close(
        &[
            cosine(&v[0], &v[1]),
            cosine(&v[1], &v[2]),
            cosine(&v[0], &v[2]),
        ],
        &[-0.066516, 0.175952, 0.041689],
        1e-4,
        "pairwise cosines s1·s2, s2·s3, s1·s3",
    );
    // One text alone gives the vector it gets in a batch.
    let alone = model.embed_one(S2).unwrap();
    assert!(cosine(&alone, &v[1]) > 0.99999);
}

/// Rows of a TEXMEX `.fvecs` file: each is an i32 dimension then that many f32, little-endian.
fn read_fvecs(path: &Path, rows: usize) -> Vec<Vec<f32>> {
    let mut file = BufReader::new(fs::File::open(path).unwrap());
    (0..rows)
        .map(|_| {
            let mut word = [0u8; 4];
            file.read_exact(&mut word).unwrap();
            let dim = i32::from_le_bytes(word) as usize;
            (0..dim)
                .map(|_| {
                    file.read_exact(&mut word).unwrap();
                    f32::from_le_bytes(word)
                })
                .collect()
        })
        .collect()
}

#[test]
fn first_200_scifact_docs_match_sentence_transformers() {
    const DOCS: usize = 200;
    let data = shared_data();
    let corpus = BufReader::new(fs::File::open(data.join("scifact/corpus.jsonl")).unwrap());
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    for line in corpus.lines().take(DOCS) {
        let doc: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        ids.push(doc["_id"].as_str().unwrap().to_owned());
        texts.push(format!(
            "{} {}",
            doc["title"].as_str().unwrap(),
            doc["text"].as_str().unwrap()
        ));
    }
    let base_dir = data.join("ann-scifact-minilm");
    let base_ids: Vec<String> = fs::read_to_string(base_dir.join("base_ids.txt"))
        .unwrap()
        .lines()
        .take(DOCS)
        .map(str::to_owned)
        .collect();
    assert_eq!(ids, base_ids, "base.fvecs rows follow corpus.jsonl order");
    let expected = read_fvecs(&base_dir.join("base.fvecs"), DOCS);

    let model = minilm();
    let long: Vec<bool> = texts
        .iter()
        .map(|t| model.count_tokens(t).unwrap() > 256)
        .collect();
    let long_docs = long.iter().filter(|&&l| l).count();
    // Docs past 256 tokens check the truncation (and that tokenizer.json's own 128 is gone).
    assert!(long_docs >= 20, "only {long_docs} docs exceed 256 tokens");

    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let actual = model.embed(&refs).unwrap();
    let elapsed = started.elapsed();

    let mut min = (f32::MAX, String::new());
    let mut min_long = f32::MAX;
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        let c = cosine(a, e);
        assert!(c >= 0.999, "doc {} (row {i}): cosine {c} < 0.999", ids[i]);
        if c < min.0 {
            min = (c, ids[i].clone());
        }
        if long[i] {
            min_long = min_long.min(c);
        }
    }
    assert_close(
        &actual[0][..5],
        &[0.063778, -0.097664, -0.015919, 0.067279, 0.016745],
        1e-4,
        "doc 4983",
    );
    println!(
        "scifact: {DOCS} docs ({long_docs} longer than 256 tokens) in {elapsed:.1?}; \
         min cosine {:.7} (1 - cos = {:.1e}, doc {}); min over long docs {min_long:.7}",
        min.0,
        1.0 - min.0,
        min.1
    );
}

#[test]
fn truncates_at_256_tokens_not_128() {
    let model = minilm();
    // "word " is one token each: 300 words are past the limit, 150 are past the 128 baked
    // into tokenizer.json.
    let words = |n: usize, w: &str| vec![w; n].join(" ");
    let base = words(150, "apple");
    let changed_at_150 = format!("{base} {}", words(60, "banana"));
    let long = format!("{} {}", words(254, "apple"), "cherry");
    let longer = format!("{long} {}", words(100, "banana"));

    assert_eq!(model.count_tokens(&longer).unwrap(), 357);
    assert_eq!(model.token_ids(&longer).unwrap().len(), 256);

    let v = model
        .embed(&[base.as_str(), &changed_at_150, &long, &longer])
        .unwrap();
    assert!(
        cosine(&v[0], &v[1]) < 0.99,
        "tokens 150..210 must count (no truncation at 128)"
    );
    assert!(
        cosine(&v[2], &v[3]) > 0.99999,
        "tokens past 256 must be ignored"
    );
}

#[test]
fn batch_composition_does_not_change_vectors() {
    let dir = require_model_dir();
    let one_by_one = BertEmbedder::load_with(
        &dir,
        BertEmbedderOptions {
            batch_size: 1,
            ..BertEmbedderOptions::default()
        },
    )
    .unwrap();
    assert_eq!(one_by_one.batch_size(), 1);
    let long = "a long sentence about memory stores for agents ".repeat(40);
    let texts = [S1, "", &long, S2, "short", S3, "tiny", &long[..200]];
    let batched = minilm().embed(&texts).unwrap();
    let single = one_by_one.embed(&texts).unwrap();
    for (i, (b, s)) in batched.iter().zip(&single).enumerate() {
        let max_diff = b
            .iter()
            .zip(s)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-5,
            "text {i}: padded batch differs by {max_diff}"
        );
    }
    assert!(minilm().embed(&[]).unwrap().is_empty());
}

#[test]
fn cached_minilm_serves_repeats_from_the_cache() {
    let cached = Cached::new(minilm(), 1000);
    let first = cached.embed(&[S1, S2]).unwrap();
    let second = cached.embed(&[S2, S3, S1]).unwrap();
    assert_eq!(second[0], first[1]);
    assert_eq!(second[2], first[0]);
    let stats = cached.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 3, 3));
    assert_eq!(cached.model(), minilm().model());
}

/// A directory with the small model files copied and, optionally, some replaced.
fn model_copy(replace: &[(&str, &[u8])]) -> tempfile::TempDir {
    let src = require_model_dir();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
    ] {
        fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    fs::copy(
        src.join("1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    for (name, bytes) in replace {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> EmbedError {
    BertEmbedder::load(dir).expect_err("loading should fail")
}

fn assert_names_file(error: &EmbedError, file: &str) {
    match error {
        EmbedError::ModelFile { path, .. } => {
            assert!(
                path.ends_with(file),
                "error names {}, expected {file}",
                path.display()
            )
        }
        other => panic!("expected a model_file error naming {file}, got {other:?}"),
    }
    assert_eq!(error.code(), "model_file");
    assert!(error.to_string().contains(file), "{error}");
}

#[test]
fn missing_or_corrupt_files_are_named() {
    let nowhere = tempfile::tempdir().unwrap().path().join("absent");
    assert_names_file(&load_error(&nowhere), "absent");

    let no_weights = model_copy(&[]);
    assert_names_file(&load_error(no_weights.path()), "model.safetensors");

    let garbage_weights = model_copy(&[("model.safetensors", b"not a safetensors file")]);
    let error = load_error(garbage_weights.path());
    assert_names_file(&error, "model.safetensors");

    // A valid safetensors file without the BERT tensors.
    let wrong_weights = model_copy(&[]);
    let tensor =
        candle_core::Tensor::zeros((2, 2), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
    candle_core::safetensors::save(
        &HashMap::from([("unrelated".to_owned(), tensor)]),
        wrong_weights.path().join("model.safetensors"),
    )
    .unwrap();
    let error = load_error(wrong_weights.path());
    assert_names_file(&error, "model.safetensors");
    assert!(
        error.to_string().contains("config.json describes"),
        "{error}"
    );

    assert_names_file(
        &load_error(model_copy(&[("config.json", b"{\"hidden_size\": ")]).path()),
        "config.json",
    );
    assert_names_file(
        &load_error(model_copy(&[("tokenizer.json", b"[]")]).path()),
        "tokenizer.json",
    );
    assert_names_file(
        &load_error(
            model_copy(&[("sentence_bert_config.json", b"{\"max_seq_length\": \"x\"}")]).path(),
        ),
        "sentence_bert_config.json",
    );
}

#[test]
fn unsupported_pipelines_and_options_are_refused() {
    let dense =
        br#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#;
    let error = load_error(model_copy(&[("modules.json", dense)]).path());
    assert_names_file(&error, "modules.json");
    assert!(error.to_string().contains("Dense"), "{error}");

    let cls = br#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#;
    let error = load_error(model_copy(&[("1_Pooling/config.json", cls)]).path());
    assert_names_file(&error, "config.json");
    assert!(error.to_string().contains("1_Pooling"), "{error}");

    let dir = model_copy(&[]);
    for options in [
        BertEmbedderOptions {
            batch_size: 0,
            ..Default::default()
        },
        BertEmbedderOptions {
            max_tokens: Some(513),
            ..Default::default()
        },
        BertEmbedderOptions {
            max_tokens: Some(2),
            ..Default::default()
        },
    ] {
        let error = BertEmbedder::load_with(dir.path(), options.clone()).expect_err("refused");
        assert_eq!(error.code(), "config_error", "{options:?}: {error}");
    }
}
