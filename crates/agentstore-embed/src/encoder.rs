//! The BERT encoder's forward pass: candle tensors and candle's matrix products, but not
//! candle-transformers' `BertModel` (nor that crate, which compiles every model it has).
//!
//! Why not `BertModel`: profiled on the 2-core benchmark machine (bench/embedding-speed.sh,
//! 256-token SciFact abstracts), it spent under 40% of its time in matrix products. Each
//! attention step (divide by √d, add the mask, a five-pass softmax) allocates a fresh
//! batch × heads × len × len tensor — 100 MB at 32 × 12 × 256² — which the kernel
//! page-faults in anew every time, and GELU runs libm's scalar `erff`. It ran at half
//! sentence-transformers' speed on long texts. Here, with the same weights and the same
//! arithmetic up to rounding:
//! - √d is folded into the query weights at load time, and Q, K and V come from one matrix
//!   product;
//! - the mask and the softmax are one in-place pass over the scores ([`MaskedSoftmax`]),
//!   padding keys get probability 0 exactly as with the −∞ mask;
//! - bias and GELU are one in-place pass with a vectorisable erf ([`BiasAct`]);
//! - the caller runs long batches in slices of at most [`TOKENS_PER_PASS`] tokens, so every
//!   intermediate stays small enough for the allocator to reuse instead of mapping fresh
//!   pages.

use candle_core::{CpuStorage, D, InplaceOp1, InplaceOp2, Layout, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Tokens (rows × padded length) per forward pass. The largest intermediate, the attention
/// scores, is then at most `heads × TOKENS_PER_PASS × len` floats: 24 MB for MiniLM at 256
/// tokens, under glibc's 32 MB ceiling for reusing freed memory instead of fresh pages.
pub(crate) const TOKENS_PER_PASS: usize = 2048;

/// The fields of a Hugging Face BERT `config.json` that the forward pass needs.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

pub(crate) struct Encoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    act: Act,
}

struct Layer {
    /// Query, key and value weights stacked, (3 × hidden, hidden), query rows pre-scaled.
    qkv: Tensor,
    qkv_bias: Tensor,
    attn_out: Tensor,
    attn_out_bias: Tensor,
    attn_norm: LayerNorm,
    up: Tensor,
    up_bias: Tensor,
    down: Tensor,
    down_bias: Tensor,
    out_norm: LayerNorm,
}

impl Encoder {
    /// Loads the weights under the usual prefixes: none (sentence-transformers' files),
    /// `bert.`, or the config's `model_type`.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let mut prefixes = vec![String::new(), "bert".to_owned()];
        if let Some(model_type) = &config.model_type {
            prefixes.push(model_type.clone());
        }
        let mut first_err = None;
        for prefix in prefixes {
            let vb = if prefix.is_empty() {
                vb.clone()
            } else {
                vb.pp(&prefix)
            };
            match Self::load_at(vb, config) {
                Ok(encoder) => return Ok(encoder),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.expect("at least one prefix was tried"))
    }

    fn load_at(vb: VarBuilder, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            candle_core::bail!("hidden_size {hidden} is not a multiple of {heads} heads");
        }
        if let Some(kind) = config
            .position_embedding_type
            .as_deref()
            .filter(|&k| k != "absolute")
        {
            candle_core::bail!("position_embedding_type {kind:?} is not supported");
        }
        let act = match config.hidden_act.as_str() {
            "gelu" => Act::Gelu,
            "relu" => Act::Relu,
            other => candle_core::bail!("hidden_act {other:?} is not supported (gelu, relu)"),
        };
        let head_dim = hidden / heads;
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let embedding = |n: usize, name: &str| -> Result<Embedding> {
            Ok(Embedding::new(
                e.get((n, hidden), &format!("{name}.weight"))?,
                hidden,
            ))
        };
        let word = embedding(config.vocab_size, "word_embeddings")?;
        let position = embedding(config.max_position_embeddings, "position_embeddings")?;
        let token_type = embedding(config.type_vocab_size, "token_type_embeddings")?;
        let norm = candle_nn::layer_norm(hidden, eps, e.pp("LayerNorm"))?;

        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let linear = |vb: VarBuilder, out: usize, inp: usize| -> Result<(Tensor, Tensor)> {
                Ok((vb.get((out, inp), "weight")?, vb.get(out, "bias")?))
            };
            let (qw, qb) = linear(a.pp("self.query"), hidden, hidden)?;
            let (kw, kb) = linear(a.pp("self.key"), hidden, hidden)?;
            let (vw, vb_) = linear(a.pp("self.value"), hidden, hidden)?;
            let qkv = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?.contiguous()?;
            let qkv_bias = Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?;
            let (attn_out, attn_out_bias) = linear(a.pp("output.dense"), hidden, hidden)?;
            let attn_norm = candle_nn::layer_norm(hidden, eps, a.pp("output.LayerNorm"))?;
            let inter = config.intermediate_size;
            let (up, up_bias) = linear(l.pp("intermediate.dense"), inter, hidden)?;
            let (down, down_bias) = linear(l.pp("output.dense"), hidden, inter)?;
            let out_norm = candle_nn::layer_norm(hidden, eps, l.pp("output.LayerNorm"))?;
            layers.push(Layer {
                qkv,
                qkv_bias,
                attn_out,
                attn_out_bias,
                attn_norm,
                up,
                up_bias,
                down,
                down_bias,
                out_norm,
            });
        }
        Ok(Encoder {
            word,
            position,
            token_type,
            norm,
            layers,
            heads,
            head_dim,
            act,
        })
    }

    /// Last hidden states, (rows × len, hidden), of `ids` and `type_ids` (both (rows, len));
    /// `lengths[r]` is row r's real length, the rest is padding that no real token attends
    /// to. Padding rows come out with unspecified values.
    pub(crate) fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        lengths: &[usize],
    ) -> Result<Tensor> {
        let (rows, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(type_ids)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let hidden = x.dim(D::Minus1)?;
        let mut x = self.norm.forward(&x)?.reshape((rows * len, hidden))?;
        for layer in &self.layers {
            x = self.layer(layer, &x, rows, len, lengths)?;
        }
        Ok(x)
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        rows: usize,
        len: usize,
        lengths: &[usize],
    ) -> Result<Tensor> {
        let (heads, head_dim) = (self.heads, self.head_dim);
        let hidden = heads * head_dim;
        let qkv = linear(x, &l.qkv, &l.qkv_bias)?
            .reshape((rows, len, 3, heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?; // (3, rows, heads, len, head_dim)
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scores = q.matmul(&k.t()?)?; // (rows, heads, len, len)
        scores.inplace_op1(&MaskedSoftmax {
            lengths: lengths.to_vec(),
            heads,
            len,
        })?;
        let context = scores
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((rows * len, hidden))?;
        let attended = l
            .attn_norm
            .forward(&(linear(&context, &l.attn_out, &l.attn_out_bias)? + x)?)?;

        let up = attended.matmul(&l.up.t()?)?;
        up.inplace_op2(&l.up_bias, &BiasAct(self.act))?;
        l.out_norm
            .forward(&(linear(&up, &l.down, &l.down_bias)? + attended)?)
    }
}

/// `x · wᵀ + b` for a (n, in) matrix.
fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    y.inplace_op2(b, &BiasAct(Act::None))?;
    Ok(y)
}

/// The row-major f32 slice of a contiguous CPU tensor.
fn f32_slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous tensors only");
    };
    Ok(&mut data[start..end])
}

/// Row-wise softmax of attention scores in place, over each row's real keys only: scores of
/// padding keys become 0, which is what adding −∞ (BERT's mask) and a softmax give.
struct MaskedSoftmax {
    /// Real length of each sequence of the batch.
    lengths: Vec<usize>,
    heads: usize,
    len: usize,
}

impl InplaceOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = f32_slice_mut(storage, layout, self.name())?;
        let len = self.len;
        let per_sequence = self.heads * len * len;
        if data.len() != self.lengths.len() * per_sequence {
            candle_core::bail!("masked-softmax: scores do not match the lengths");
        }
        let arch = pulp::Arch::new();
        data.par_chunks_mut(len * len)
            .enumerate()
            .for_each(|(i, block)| {
                let real = self.lengths[i / self.heads].clamp(1, len);
                arch.dispatch(SoftmaxRows { block, len, real });
            });
        Ok(())
    }
}

// The loops run through `pulp::Arch::dispatch` as `WithSimd` operations: `with_simd` is
// compiled for the CPU's widest SIMD (AVX2 and FMA here, found at run time), and everything
// it inlines is auto-vectorised for it. The build targets baseline x86-64 (SSE2) otherwise.

struct SoftmaxRows<'a> {
    block: &'a mut [f32],
    len: usize,
    real: usize,
}

impl WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        for row in self.block.chunks_exact_mut(self.len) {
            let (keep, pad) = row.split_at_mut(self.real);
            softmax(keep);
            pad.fill(0.0);
        }
    }
}

struct BiasRows<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
    act: Act,
}

impl WithSimd for BiasRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        for row in self.rows.chunks_exact_mut(self.bias.len()) {
            let pairs = row.iter_mut().zip(self.bias);
            match self.act {
                Act::None => pairs.for_each(|(x, b)| *x += b),
                Act::Gelu => pairs.for_each(|(x, b)| *x = gelu_erf(*x + b)),
                Act::Relu => pairs.for_each(|(x, b)| *x = (*x + b).max(0.0)),
            }
        }
    }
}

/// Lanes of the partial maxima and sums below: separate accumulators let the loops
/// vectorise (one running sum would fix the order of the additions).
const LANES: usize = 8;

#[inline(always)]
fn softmax(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &x) in lanes.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    let sum: f32 = chunks.remainder().iter().chain(&lanes).sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// What follows the bias add.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    None,
    /// BERT's `gelu`: the erf form, not the tanh approximation.
    Gelu,
    Relu,
}

/// Adds a bias to every row of a matrix in place, then the activation.
struct BiasAct(Act);

impl InplaceOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let data = f32_slice_mut(s1, l1, self.name())?;
        let CpuStorage::F32(bias) = s2 else {
            candle_core::bail!("bias-activation: f32 only");
        };
        let Some((start, end)) = l2.contiguous_offsets() else {
            candle_core::bail!("bias-activation: contiguous bias only");
        };
        let bias = &bias[start..end];
        let width = bias.len();
        if width == 0 || !data.len().is_multiple_of(width) {
            candle_core::bail!("bias-activation: bias does not match the rows");
        }
        let arch = pulp::Arch::new();
        let act = self.0;
        // Rows in groups, so that a small matrix is not split into per-row tasks.
        let rows_per_task = (16384 / width).max(1);
        data.par_chunks_mut(rows_per_task * width).for_each(|rows| {
            arch.dispatch(BiasRows { rows, bias, act });
        });
        Ok(())
    }
}

/// `x · Φ(x)` with Φ through [`erf`]: BERT's exact GELU, not the tanh approximation.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7, below f32's resolution
/// near 1), branch-free so that loops over it vectorise; PyTorch's vectorised CPU erf uses
/// the same formula.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_72;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// e^x for f32, branch-free (Cephes `expf`: x = n·ln 2 + r, a degree-5 polynomial for e^r,
/// 2^n through the exponent bits), within 2 ulp of `f32::exp` over the range used here.
/// Inputs below −87 give ~0 (not subnormals), above 88 saturate.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 × 2²³: adding and subtracting it rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5e-1;
    let er = p * r * r + r + 1.0;
    // 2^n from the exponent bits. n + 127 is an integer in 1..=215, so adding 2²³ puts it in
    // the low mantissa bits; unlike `as i32`, this needs no saturation checks and vectorises.
    let biased = (n + (127.0 + 8_388_608.0)).to_bits() & 0xff;
    let scale = f32::from_bits(biased << 23);
    er * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 4.0 * f32::EPSILON,
                "exp({x}) = {ours}, std {std}"
            );
            x += 0.0137;
        }
    }

    #[test]
    fn gelu_matches_erf_form() {
        // Reference erf through f64 (std has none): Φ(x) by the complementary error
        // function's continued fraction is overkill; a Taylor series is exact enough here.
        fn erf64(x: f64) -> f64 {
            if x.abs() > 5.0 {
                return x.signum();
            }
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut x = -8.0f32;
        while x < 8.0 {
            let want = 0.5 * f64::from(x) * (1.0 + erf64(f64::from(x) / 2f64.sqrt()));
            let got = f64::from(gelu_erf(x));
            assert!((got - want).abs() < 1e-6, "gelu({x}) = {got}, want {want}");
            x += 0.003;
        }
    }
}
