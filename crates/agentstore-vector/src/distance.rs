//! Distance kernels.
//!
//! The binary must run on any x86-64, yet the hot loop should use AVX2 + FMA where the CPU has
//! them. `pulp` detects the CPU once (`Arch::new`) and runs a `WithSimd` operation inside a
//! function compiled for the best available instruction set, without `unsafe` on our side.
//! Dispatch costs a branch and a non-inlined call, so it is done once per *batch* of
//! distances (all unvisited neighbours of a node, or a chunk of a brute-force scan), never
//! once per pair: the kernels below are `#[inline(always)]` so they are compiled with the
//! target features of the dispatched caller. The integer kernels are plain Rust loops that
//! LLVM vectorises under those features (integer sums are associative, float ones are not,
//! which is why the f32 kernels use explicit SIMD lanes and four accumulators).

use pulp::{Arch, Simd, WithSimd};

/// Internal distance: lower is closer. Cosine is stored normalised and uses `NegDot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    NegDot,
    L2Sq,
}

#[inline(always)]
fn dot_f32<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (ah, at) = S::as_simd_f32s(a);
    let (bh, bt) = S::as_simd_f32s(b);
    let zero = simd.splat_f32s(0.0);
    let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
    let mut ca = ah.chunks_exact(4);
    let mut cb = bh.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        a0 = simd.mul_add_e_f32s(x[0], y[0], a0);
        a1 = simd.mul_add_e_f32s(x[1], y[1], a1);
        a2 = simd.mul_add_e_f32s(x[2], y[2], a2);
        a3 = simd.mul_add_e_f32s(x[3], y[3], a3);
    }
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        a0 = simd.mul_add_e_f32s(x, y, a0);
    }
    let s = simd.add_f32s(simd.add_f32s(a0, a1), simd.add_f32s(a2, a3));
    let mut r = simd.reduce_sum_f32s(s);
    for (&x, &y) in at.iter().zip(bt) {
        r += x * y;
    }
    r
}

#[inline(always)]
fn l2sq_f32<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (ah, at) = S::as_simd_f32s(a);
    let (bh, bt) = S::as_simd_f32s(b);
    let zero = simd.splat_f32s(0.0);
    let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
    let mut ca = ah.chunks_exact(4);
    let mut cb = bh.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let d0 = simd.sub_f32s(x[0], y[0]);
        let d1 = simd.sub_f32s(x[1], y[1]);
        let d2 = simd.sub_f32s(x[2], y[2]);
        let d3 = simd.sub_f32s(x[3], y[3]);
        a0 = simd.mul_add_e_f32s(d0, d0, a0);
        a1 = simd.mul_add_e_f32s(d1, d1, a1);
        a2 = simd.mul_add_e_f32s(d2, d2, a2);
        a3 = simd.mul_add_e_f32s(d3, d3, a3);
    }
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = simd.sub_f32s(x, y);
        a0 = simd.mul_add_e_f32s(d, d, a0);
    }
    let s = simd.add_f32s(simd.add_f32s(a0, a1), simd.add_f32s(a2, a3));
    let mut r = simd.reduce_sum_f32s(s);
    for (&x, &y) in at.iter().zip(bt) {
        let d = x - y;
        r += d * d;
    }
    r
}

#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    // 32 lanes of i32: LLVM turns this into sign-extend + multiply-add on 256-bit registers.
    let mut acc = [0i32; 32];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..32 {
            acc[j] += i32::from(x[j]) * i32::from(y[j]);
        }
    }
    let mut r: i32 = acc.iter().sum();
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        r += i32::from(x) * i32::from(y);
    }
    r
}

#[inline(always)]
fn l2sq_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..32 {
            let d = i32::from(x[j]) - i32::from(y[j]);
            acc[j] += d * d;
        }
    }
    let mut r: i32 = acc.iter().sum();
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = i32::from(x) - i32::from(y);
        r += d * d;
    }
    r
}

struct BatchF32<'a> {
    kind: Kind,
    q: &'a [f32],
    data: &'a [f32],
    dim: usize,
    ids: &'a [u32],
    out: &'a mut [f32],
}

impl WithSimd for BatchF32<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let dim = self.dim;
        match self.kind {
            Kind::NegDot => {
                for (o, &id) in self.out.iter_mut().zip(self.ids) {
                    let s = id as usize * dim;
                    *o = -dot_f32(simd, self.q, &self.data[s..s + dim]);
                }
            }
            Kind::L2Sq => {
                for (o, &id) in self.out.iter_mut().zip(self.ids) {
                    let s = id as usize * dim;
                    *o = l2sq_f32(simd, self.q, &self.data[s..s + dim]);
                }
            }
        }
    }
}

struct BatchI8<'a> {
    kind: Kind,
    q: &'a [i8],
    codes: &'a [i8],
    dim: usize,
    ids: &'a [u32],
    out: &'a mut [f32],
}

impl WithSimd for BatchI8<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let dim = self.dim;
        match self.kind {
            Kind::NegDot => {
                for (o, &id) in self.out.iter_mut().zip(self.ids) {
                    let s = id as usize * dim;
                    *o = -(dot_i8(self.q, &self.codes[s..s + dim]) as f32);
                }
            }
            Kind::L2Sq => {
                for (o, &id) in self.out.iter_mut().zip(self.ids) {
                    let s = id as usize * dim;
                    *o = l2sq_i8(self.q, &self.codes[s..s + dim]) as f32;
                }
            }
        }
    }
}

struct Pair<'a> {
    kind: Kind,
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for Pair<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        match self.kind {
            Kind::NegDot => -dot_f32(simd, self.a, self.b),
            Kind::L2Sq => l2sq_f32(simd, self.a, self.b),
        }
    }
}

/// `out[i] = distance(q, row ids[i] of data)`; `data` is row-major with `dim` columns.
#[inline]
pub(crate) fn batch_f32(
    arch: Arch,
    kind: Kind,
    q: &[f32],
    data: &[f32],
    dim: usize,
    ids: &[u32],
    out: &mut [f32],
) {
    arch.dispatch(BatchF32 {
        kind,
        q,
        data,
        dim,
        ids,
        out,
    });
}

/// Same as [`batch_f32`] on int8 codes; the result is in code units (only ordering matters).
#[inline]
pub(crate) fn batch_i8(
    arch: Arch,
    kind: Kind,
    q: &[i8],
    codes: &[i8],
    dim: usize,
    ids: &[u32],
    out: &mut [f32],
) {
    arch.dispatch(BatchI8 {
        kind,
        q,
        codes,
        dim,
        ids,
        out,
    });
}

#[inline]
pub(crate) fn pair(arch: Arch, kind: Kind, a: &[f32], b: &[f32]) -> f32 {
    arch.dispatch(Pair { kind, a, b })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_scalar() {
        let arch = Arch::new();
        for dim in [0usize, 1, 7, 8, 31, 33, 64, 100, 384] {
            let a: Vec<f32> = (0..dim)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let b: Vec<f32> = (0..dim)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((pair(arch, Kind::NegDot, &a, &b) + dot).abs() < 1e-3);
            assert!((pair(arch, Kind::L2Sq, &a, &b) - l2).abs() < 1e-3);
            let qa: Vec<i8> = (0..dim)
                .map(|i| (i as i32 * 37 % 255 - 127) as i8)
                .collect();
            let qb: Vec<i8> = (0..dim)
                .map(|i| (i as i32 * 91 % 255 - 127) as i8)
                .collect();
            let idot: i32 = qa
                .iter()
                .zip(&qb)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum();
            let il2: i32 = qa
                .iter()
                .zip(&qb)
                .map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2))
                .sum();
            let mut out = [0f32; 1];
            batch_i8(arch, Kind::NegDot, &qa, &qb, dim, &[0], &mut out);
            assert_eq!(out[0], -(idot as f32));
            batch_i8(arch, Kind::L2Sq, &qa, &qb, dim, &[0], &mut out);
            assert_eq!(out[0], il2 as f32);
        }
    }
}
