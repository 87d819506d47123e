//! Batched-attention kernels of every build this machine runs against straightforward scalar
//! sums.
//!
//! * **Scores** ([`dot_f32_tile`]): each `q_j · k_s` within the bound for `d` terms added in
//!   some order, `|got − exact| ≤ (⌈d/8⌉ + 2·(d % 8) + 4)·2⁻²⁴·Σ|q·k|` against an f64 sum
//!   (FMA chains of at most `⌈d/8⌉` chunks, the lane reductions, a product and a sum per tail
//!   term); outputs outside the `n_q × n_k` tile are never written.
//! * **Weighted sums** ([`weighted_row_sums`]): bit-identical to `axpy` applied row after row,
//!   for 8 heads too (AVX-512 tile or two AVX2 tiles of 4), with column counts that end in
//!   each of the 512-bit, 256-bit and scalar loops. (With `SLUICE_CPU_ISA=scalar` the
//!   x86 builds are skipped here: their fallback for other head counts is the scalar `axpy`.)

use super::isa::Isa;
use super::tests::Rng;
use super::*;

fn isas() -> Vec<Isa> {
    Isa::all_available()
}

#[test]
fn score_tiles_stay_within_the_summation_bound() {
    let mut rng = Rng(0xa77e);
    for isa in isas() {
        for d in [1usize, 5, 8, 13, 16, 24, 31, 64, 100, 576] {
            for n_q in [1usize, 2, 3, 4, 5, 7, 8, 9] {
                for n_k in [1usize, 2, 3, 4, 5, 7, 17] {
                    let (qs, ks, ld) = (d + 3, d + 5, n_k + 2);
                    let q: Vec<f32> = (0..(n_q - 1) * qs + d).map(|_| rng.unit()).collect();
                    let k: Vec<f32> = (0..(n_k - 1) * ks + d).map(|_| rng.unit()).collect();
                    let sentinel = 12345.5f32;
                    let mut out = vec![sentinel; (n_q - 1) * ld + n_k + 1];
                    dot_f32_tile_isa(isa, d, &q, qs, n_q, &k, ks, n_k, &mut out, ld);
                    for (i, &o) in out.iter().enumerate() {
                        let (j, s) = (i / ld, i % ld);
                        if j >= n_q || s >= n_k {
                            assert_eq!(o, sentinel, "{}: wrote outside the tile", isa.name());
                            continue;
                        }
                        let (qj, ks_) = (&q[j * qs..j * qs + d], &k[s * ks..s * ks + d]);
                        let exact: f64 =
                            qj.iter().zip(ks_).map(|(&a, &b)| a as f64 * b as f64).sum();
                        let mag: f64 = qj
                            .iter()
                            .zip(ks_)
                            .map(|(&a, &b)| (a * b).abs() as f64)
                            .sum();
                        let bound = (d.div_ceil(8) + 2 * (d % 8) + 4) as f64 * 2f64.powi(-24) * mag;
                        assert!(
                            (o as f64 - exact).abs() <= bound,
                            "{} d {d} q {n_q} k {n_k} ({j},{s}): {o} vs {exact} (bound {bound})",
                            isa.name()
                        );
                    }
                }
            }
        }
    }
}

/// `axpy` as the kernels of `isa` round it: on x86 one FMA per term up to the last whole group
/// of 8 values, then multiply and add; elsewhere the active `axpy` (which the fallback uses).
fn axpy_as(isa: Isa, acc: &mut [f32], a: f32, x: &[f32]) {
    if cfg!(target_arch = "x86_64") && isa.is_x86() {
        let fused_end = acc.len().min(x.len()) / 8 * 8;
        for (i, (o, &v)) in acc.iter_mut().zip(x).enumerate() {
            *o = if i < fused_end {
                a.mul_add(v, *o)
            } else {
                *o + a * v
            };
        }
    } else {
        axpy(acc, a, x);
    }
}

#[test]
fn weighted_row_sums_of_every_build_equal_axpy_row_by_row() {
    let mut rng = Rng(0x77e2);
    for isa in isas() {
        if isa.is_x86() && !active_isa().is_x86() {
            continue;
        }
        for heads in [1usize, 2, 3, 4, 5, 8] {
            for (n, stride) in [
                (64usize, 64usize),
                (13, 20),
                (50, 60),
                (72, 576),
                (512, 576),
            ] {
                for rows in [1usize, 7, 100] {
                    let v: Vec<f32> = (0..(rows - 1) * stride + n).map(|_| rng.unit()).collect();
                    let w: Vec<f32> = (0..heads * rows).map(|_| rng.unit().abs()).collect();
                    let mut got = vec![f32::NAN; heads * n];
                    weighted_row_sums_isa(isa, &v, stride, rows, &w, heads, &mut got);
                    for h in 0..heads {
                        let mut want = vec![0f32; n];
                        for s in 0..rows {
                            axpy_as(isa, &mut want, w[h * rows + s], &v[s * stride..][..n]);
                        }
                        let same = want
                            .iter()
                            .zip(&got[h * n..(h + 1) * n])
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{}: heads {heads}, n {n}, rows {rows}: head {h} differs",
                            isa.name()
                        );
                    }
                }
            }
        }
    }
}
