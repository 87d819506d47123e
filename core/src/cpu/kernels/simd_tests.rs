//! Every vectorised kernel this machine can run against the scalar reference.
//!
//! * **Integer parts exact.** With all float scales set to 1 (or powers of two) and small
//!   activation codes, every float term is an integer below 2²⁴, so any summation order is
//!   exact: vectorised and scalar results must be bit-identical.
//! * **Float combination bounded.** On random blocks the two may differ only by the rounding
//!   of summing the per-block terms in another order: `|simd − scalar| ≤ (B + 8)·2⁻²²·Σ|w·a|`
//!   for a row of `B` blocks (see the module docs of `kernels`).
//! * **Multi-row = single-row.** `multi` must give exactly `vec_dot`'s value for each row.
//! * **Activation converters** produce the scalar converters' bytes exactly.

use super::isa::Isa;
use super::tests::{dequant, random_weights, Rng};
use super::*;
use half::f16;

/// The vectorised tables to check (none on a machine without SIMD: the test then checks the
/// scalar table against itself, which still exercises the harness).
fn tables() -> Vec<(Isa, &'static [DotKernel])> {
    Isa::all_available()
        .into_iter()
        .filter_map(|i| kernels_for(i).map(|t| (i, t)))
        .collect()
}

fn act_bytes(act: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut a = vec![0u8; act.row_bytes(x.len() as u64).expect("whole blocks") as usize];
    quantize_activation_scalar(act, x, &mut a).expect("activation type");
    a
}

#[test]
fn vectorised_dots_stay_within_the_rounding_bound() {
    let mut rng = Rng(0x5eed);
    for (isa, table) in tables() {
        for k in table {
            let elems = k.weight.block_elems().expect("known") as usize;
            for n in [256usize, 768, 4096, 7168] {
                if !n.is_multiple_of(elems) {
                    continue;
                }
                for _ in 0..4 {
                    let w = random_weights(&mut rng, k.weight, n);
                    let x: Vec<f32> = (0..n).map(|_| rng.unit() * 3.0).collect();
                    let a = act_bytes(k.act, &x);
                    let got = (k.vec_dot)(n, &w, &a) as f64;
                    let want = (k.scalar)(n, &w, &a) as f64;
                    let scale: f64 = dequant(k.weight, &w, n)
                        .iter()
                        .zip(dequant(k.act, &a, n))
                        .map(|(&p, q)| (p as f64 * q as f64).abs())
                        .sum();
                    let blocks = (n / elems.max(32)) as f64;
                    let bound = (blocks + 8.0) * 2f64.powi(-22) * scale + 1e-30;
                    assert!(
                        (got - want).abs() <= bound,
                        "{} {} n={n}: {got} vs scalar {want} (diff {:e}, bound {bound:e})",
                        isa.name(),
                        k.weight,
                        (got - want).abs()
                    );
                }
            }
        }
    }
}

/// Offsets of the f16 scale fields of one block set to 1.0 for the exactness test.
fn unit_scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty.name().as_str() {
        "Q4_1" | "Q5_1" | "Q4_K" | "Q5_K" => &[0, 2],
        "Q2_K" => &[80, 82],
        "Q3_K" => &[108],
        "Q6_K" => &[208],
        "IQ1_M" => &[],
        _ => &[0],
    }
}

/// Random blocks with every float scale set to 1 (IQ1_M: its nibble-split scale too).
fn unit_scale_weights(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let info = ty.info().expect("known");
    let (elems, size) = (info.block_elems as usize, info.block_bytes as usize);
    let mut w = rng.bytes(n / elems * size);
    let one = f16::from_f32(1.0).to_le_bytes();
    for block in w.chunks_exact_mut(size) {
        for &at in unit_scale_fields(ty) {
            block[at..at + 2].copy_from_slice(&one);
        }
        if ty.name() == "IQ1_M" {
            // bits 0x3c00 spread over the top nibbles of the four scale words
            for (word, nibble) in [(0usize, 0u8), (1, 0), (2, 0xc), (3, 0x3)] {
                let hi = &mut block[48 + 2 * word + 1];
                *hi = (*hi & 0x0f) | (nibble << 4);
            }
        }
    }
    w
}

/// An activation row with scale 1 and codes in −3..=3.
fn unit_scale_activation(rng: &mut Rng, act: GgmlType, n: usize) -> Vec<u8> {
    let codes: Vec<i8> = (0..n).map(|_| (rng.next() % 7) as i8 - 3).collect();
    let mut out = Vec::new();
    match act.name().as_str() {
        "Q8_0" | "Q8_1" => {
            for c in codes.chunks_exact(32) {
                out.extend_from_slice(&f16::from_f32(1.0).to_le_bytes());
                if act.name() == "Q8_1" {
                    let s: i32 = c.iter().map(|&v| v as i32).sum();
                    out.extend_from_slice(&f16::from_f32(s as f32).to_le_bytes());
                }
                out.extend(c.iter().map(|&v| v as u8));
            }
        }
        "Q8_K" => {
            for c in codes.chunks_exact(256) {
                out.extend_from_slice(&1.0f32.to_le_bytes());
                out.extend(c.iter().map(|&v| v as u8));
                for g in c.chunks_exact(16) {
                    let s: i16 = g.iter().map(|&v| v as i16).sum();
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
        _ => {
            let x: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
            return act_bytes(act, &x);
        }
    }
    out
}

#[test]
fn vectorised_integer_sums_are_exact() {
    let mut rng = Rng(0xe4ac7);
    for (isa, table) in tables() {
        for k in table
            .iter()
            .filter(|k| !matches!(k.weight, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16))
        {
            let n = 512;
            for _ in 0..20 {
                let w = unit_scale_weights(&mut rng, k.weight, n);
                let a = unit_scale_activation(&mut rng, k.act, n);
                let got = (k.vec_dot)(n, &w, &a);
                let want = (k.scalar)(n, &w, &a);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{} {}: {got} vs scalar {want}",
                    isa.name(),
                    k.weight
                );
            }
        }
    }
}

#[test]
fn multi_row_equals_single_row() {
    let mut rng = Rng(0x3417);
    for (isa, table) in tables() {
        for k in table {
            let n: usize = 1024;
            if !n.is_multiple_of(k.weight.block_elems().expect("known") as usize) {
                continue;
            }
            let w = random_weights(&mut rng, k.weight, n);
            let rb = k.act.row_bytes(n as u64).expect("whole") as usize;
            let stride = rb + 3 * k.act.info().expect("known").block_bytes as usize;
            for rows in [1usize, 2, 3, 4, 5, 7, 9] {
                let mut a = vec![0u8; stride * rows];
                for r in 0..rows {
                    let x: Vec<f32> = (0..n).map(|_| rng.unit() * 2.0).collect();
                    a[r * stride..r * stride + rb].copy_from_slice(&act_bytes(k.act, &x));
                }
                let mut out = vec![0f32; rows];
                (k.multi)(n, &w, &a, stride, &mut out);
                for (r, &o) in out.iter().enumerate() {
                    let single = (k.vec_dot)(n, &w, &a[r * stride..r * stride + rb]);
                    assert_eq!(
                        o.to_bits(),
                        single.to_bits(),
                        "{} {} row {r} of {rows}",
                        isa.name(),
                        k.weight
                    );
                }
            }
        }
    }
}

#[test]
fn short_slices_are_never_overread() {
    for (_, table) in tables() {
        for k in table {
            // Fewer bytes than n asks for: the kernels sum what is there (and must not crash).
            let _ = (k.vec_dot)(1 << 20, &[0u8; 300], &[0u8; 100]);
            let mut out = [0f32; 5];
            (k.multi)(1 << 20, &[0u8; 300], &[0u8; 700], 300, &mut out);
        }
    }
}

#[test]
fn vectorised_converters_match_the_scalar_bytes() {
    let mut rng = Rng(0xac7);
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for scale in [1e-3f32, 1.0, 37.0, 3e4] {
        rows.push((0..512).map(|_| rng.unit() * scale).collect());
    }
    let mut special = vec![0.0f32; 512];
    special[3] = -127.0; // first largest magnitude, negative
    special[4] = 127.0;
    special[10] = 2.5; // exact halves
    special[11] = -3.5;
    special[300] = 0.5;
    rows.push(special);
    rows.push(vec![0.0; 512]);
    let mut one_block_zero: Vec<f32> = (0..512).map(|_| rng.unit()).collect();
    one_block_zero[256..].fill(0.0);
    rows.push(one_block_zero);
    for isa in Isa::all_available() {
        for act in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
        ] {
            for x in &rows {
                let n = act.row_bytes(x.len() as u64).expect("whole") as usize;
                let (mut got, mut want) = (vec![0u8; n], vec![0u8; n]);
                act::quantize_activation_isa(isa, act, x, &mut got).expect("converts");
                quantize_activation_scalar(act, x, &mut want).expect("converts");
                assert!(got == want, "{} {act}: bytes differ", isa.name());
            }
        }
    }
}

#[test]
fn weighted_row_sums_equal_axpy_row_by_row() {
    let mut rng = Rng(0x77e1);
    for heads in 1..=4usize {
        for (n, stride) in [(64usize, 64usize), (13, 20), (72, 576), (512, 576)] {
            for rows in [1usize, 7, 100] {
                let v: Vec<f32> = (0..(rows - 1) * stride + n).map(|_| rng.unit()).collect();
                let w: Vec<f32> = (0..heads * rows).map(|_| rng.unit().abs()).collect();
                let mut got = vec![f32::NAN; heads * n];
                weighted_row_sums(&v, stride, rows, &w, heads, &mut got);
                for h in 0..heads {
                    let mut want = vec![0f32; n];
                    for s in 0..rows {
                        axpy(&mut want, w[h * rows + s], &v[s * stride..s * stride + n]);
                    }
                    let same = want
                        .iter()
                        .zip(&got[h * n..(h + 1) * n])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "heads {heads}, n {n}, rows {rows}: head {h} differs");
                }
            }
        }
    }
}

/// The AVX-512 build computes the same integer sums as the AVX2 build, wider, and combines them
/// in the same order (`x86`'s module docs): outside the float formats (whose reduction order
/// follows ggml's for each width) the two tables must agree bit for bit.
#[test]
fn x86_builds_agree_bit_for_bit() {
    let (Some(narrow), Some(wide)) = (kernels_for(Isa::Avx2), kernels_for(Isa::Avx512)) else {
        return;
    };
    let mut rng = Rng(0xa512);
    for (k, kw) in narrow.iter().zip(wide) {
        assert_eq!(k.weight, kw.weight);
        if matches!(k.weight, GgmlType::F32 | GgmlType::F16) {
            continue;
        }
        let n: usize = 7168;
        if !n.is_multiple_of(k.weight.block_elems().expect("known") as usize) {
            continue;
        }
        let w = random_weights(&mut rng, k.weight, n);
        let rb = k.act.row_bytes(n as u64).expect("whole") as usize;
        let rows = 11;
        let mut a = vec![0u8; rb * rows];
        for r in 0..rows {
            let x: Vec<f32> = (0..n).map(|_| rng.unit() * 2.0).collect();
            a[r * rb..(r + 1) * rb].copy_from_slice(&act_bytes(k.act, &x));
        }
        let (mut got, mut want) = (vec![0f32; rows], vec![0f32; rows]);
        (kw.multi)(n, &w, &a, rb, &mut got);
        (k.multi)(n, &w, &a, rb, &mut want);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{}", k.weight);
        assert_eq!(
            (kw.vec_dot)(n, &w, &a[..rb]).to_bits(),
            want[0].to_bits(),
            "{}",
            k.weight
        );
    }
}

/// The panel GEMM (x86 AVX-512 VNNI) against the scalar dot product of every (row, token):
/// within the rounding bound, for each panel type, several widths and token counts that
/// exercise every tail of the token loop.
#[cfg(target_arch = "x86_64")]
#[test]
fn panel_gemm_matches_the_scalar_dots() {
    use super::x86::panel::{gemm_rows, pack, panel_bytes, ROWS};
    if !super::x86::available_wide() {
        return;
    }
    let mut rng = Rng(0x9a4e);
    let panel_types: Vec<&DotKernel> = KERNELS
        .iter()
        .filter(|k| panel_bytes(k.weight, 768).is_some())
        .collect();
    assert!(panel_types.len() >= 6, "the k-quants and Q4_1 have panels");
    for k in panel_types {
        let ty = k.weight;
        let elems = ty.block_elems().expect("known") as usize;
        for (cols, n) in [(96usize, 3usize), (256, 1), (768, 7), (7168, 9), (576, 17)] {
            if !cols.is_multiple_of(elems) {
                continue;
            }
            let row_bytes = ty.row_bytes(cols as u64).expect("whole") as usize;
            let w: Vec<u8> = (0..ROWS)
                .flat_map(|_| random_weights(&mut rng, ty, cols))
                .collect();
            let rb = k.act.row_bytes(cols as u64).expect("whole") as usize;
            let xs: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..cols).map(|_| rng.unit() * 3.0).collect())
                .collect();
            let acts: Vec<u8> = xs.iter().flat_map(|x| act_bytes(k.act, x)).collect();
            let mut panel = vec![0u8; panel_bytes(ty, cols).expect("k-quant")];
            assert!(pack(ty, cols, &w, row_bytes, &mut panel));
            let mut out = vec![f32::NAN; ROWS * n];
            assert!(gemm_rows(ty, cols, &panel, &acts, rb, n, &mut out));
            for i in 0..ROWS {
                let wr = &w[i * row_bytes..(i + 1) * row_bytes];
                let wf = dequant(ty, wr, cols);
                for t in 0..n {
                    let a = &acts[t * rb..(t + 1) * rb];
                    let want = (k.scalar)(cols, wr, a) as f64;
                    let got = out[i * n + t] as f64;
                    let scale: f64 = wf
                        .iter()
                        .zip(dequant(k.act, a, cols))
                        .map(|(&p, q)| (p as f64 * q as f64).abs())
                        .sum();
                    let bound = ((cols / elems) as f64 + 8.0) * 2f64.powi(-22) * scale + 1e-30;
                    assert!(
                        (got - want).abs() <= bound,
                        "{ty} cols={cols} row {i} token {t}: {got} vs scalar {want} (bound {bound:e})"
                    );
                }
            }
        }
    }
}
