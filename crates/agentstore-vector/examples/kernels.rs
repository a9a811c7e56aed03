//! Distance-kernel micro-benchmark: 384-d dot products over 2,000 cache-resident rows.
//!
//! Compares the crate's runtime-dispatched kernel (`similarity`, pulp: AVX2+FMA here) with
//! plain Rust compiled for the portable x86-64 baseline (SSE2): a naive iterator sum, which
//! LLVM must keep sequential (float addition is not associative), and an 8-accumulator loop
//! that LLVM can vectorise.
//!
//! `cargo run --release -p agentstore-vector --example kernels`

use std::hint::black_box;
use std::time::Instant;

use agentstore_vector::{IndexParams, Metric, VectorIndex, similarity};

fn naive(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn eight_acc(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = naive(ca.remainder(), cb.remainder());
    acc.iter().sum::<f32>() + tail
}

fn main() {
    let dim = 384;
    let rows = 2000;
    let mut s = 1u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let data: Vec<Vec<f32>> = (0..rows)
        .map(|_| (0..dim).map(|_| next()).collect())
        .collect();
    let q: Vec<f32> = (0..dim).map(|_| next()).collect();
    let reps = 200;
    let run = |name: &str, f: &dyn Fn(&[f32], &[f32]) -> f32| {
        let t = Instant::now();
        let mut acc = 0f32;
        for _ in 0..reps {
            for r in &data {
                acc += f(black_box(&q), black_box(r));
            }
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / (reps * rows) as f64;
        println!("{name:<32} {ns:>6.1} ns per 384-d dot  (checksum {acc:.3})");
    };
    run("naive iterator sum (SSE2)", &naive);
    run("8 accumulators (SSE2)", &eight_acc);
    run("pulp dispatch per pair", &|a, b| {
        similarity(Metric::Dot, a, b)
    });

    // The batched kernel the index uses (one dispatch per batch), timed through a
    // brute-force scan; includes the top-k selection.
    let mut ix = VectorIndex::new(dim, Metric::Dot, IndexParams::default());
    let items: Vec<(u64, Vec<f32>)> = data
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    ix.insert_batch(&items, 2).unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        black_box(ix.exact(black_box(&q), 10, None).unwrap());
    }
    let ns = t.elapsed().as_secs_f64() * 1e9 / (reps * rows) as f64;
    println!(
        "{:<32} {ns:>6.1} ns per 384-d dot",
        "pulp batched (VectorIndex::exact)"
    );
}
