//! Unit tests of the CPU kernels: each dot product against an f64 dot of the dequantized
//! operands, and the rounding rules of the activation and storage quantizers.

use super::*;
use crate::quant::TYPES;
use half::{bf16, f16};

/// SplitMix64: a tiny deterministic generator for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    ty.dequantize(bytes, &mut out).expect("whole blocks");
    out
}

/// A random weight row of `n` elements whose values are all finite: random block bytes, with
/// any block that decodes to a non-finite value (a NaN/inf scale) drawn again.
fn random_weights(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let info = ty.info().expect("known type");
    let (elems, size) = (info.block_elems as usize, info.block_bytes as usize);
    if elems == 1 {
        let x: Vec<f32> = (0..n).map(|_| rng.unit() * 3.0).collect();
        let mut out = vec![0u8; n * size];
        quantize_row(ty, &x, &mut out).expect("float type");
        return out;
    }
    let mut row = Vec::with_capacity(n / elems * size);
    while row.len() < n / elems * size {
        let block = rng.bytes(size);
        if dequant(ty, &block, elems)
            .iter()
            .all(|v| v.is_finite() && v.abs() < 1e6)
        {
            row.extend_from_slice(&block);
        }
    }
    row
}

/// |vec_dot − Σ dequant(w)·dequant(a)| must stay below `tol · Σ |w·a|` (the f32 rounding of a
/// sum of that many terms), for every kernel of the table.
#[test]
fn vec_dot_matches_dequantized_dot() {
    let mut rng = Rng(7);
    for k in KERNELS {
        for n in [256usize, 1024, 4096] {
            if !n.is_multiple_of(k.weight.block_elems().expect("known") as usize) {
                continue;
            }
            let w = random_weights(&mut rng, k.weight, n);
            let x: Vec<f32> = (0..n).map(|_| rng.unit() * 2.5).collect();
            let mut a = vec![0u8; k.act.row_bytes(n as u64).expect("whole blocks") as usize];
            quantize_activation(k.act, &x, &mut a).expect("activation type");
            let got = k.dot(n, &w, &a).expect("sizes match");
            let (wd, ad) = (dequant(k.weight, &w, n), dequant(k.act, &a, n));
            let mut want: f64 = wd.iter().zip(&ad).map(|(&p, &q)| p as f64 * q as f64).sum();
            let mut scale: f64 = wd
                .iter()
                .zip(&ad)
                .map(|(&p, &q)| (p as f64 * q as f64).abs())
                .sum();
            if k.act == GgmlType::Q8_1 {
                // The min term uses the activation's stored f16 sum `s`, not d·Σq: swap it in.
                let size = k.weight.info().expect("known").block_bytes as usize;
                for b in 0..n / 32 {
                    let m = f16::from_le_bytes([w[size * b + 2], w[size * b + 3]]).to_f32() as f64;
                    let s = f16::from_le_bytes([a[36 * b + 2], a[36 * b + 3]]).to_f32() as f64;
                    let exact: f64 = ad[32 * b..32 * b + 32].iter().map(|&q| q as f64).sum();
                    want += m * (s - exact);
                    scale += (m * s).abs();
                }
            }
            let err = (got as f64 - want).abs();
            assert!(
                err <= 2e-6 * scale + 1e-30,
                "{} n={n}: vec_dot {got} vs {want} (error {err:e}, scale {scale:e})",
                k.weight
            );
        }
    }
}

#[test]
fn every_weight_type_has_one_kernel() {
    for t in TYPES.iter().filter(|t| !t.removed) {
        let count = KERNELS.iter().filter(|k| k.weight == t.ty).count();
        let activation_only = matches!(t.name, "Q8_1" | "Q8_K");
        let integer = matches!(t.name, "I8" | "I16" | "I32" | "I64" | "F64");
        let want = if activation_only || integer { 0 } else { 1 };
        assert_eq!(count, want, "{}", t.name);
    }
    assert_eq!(
        dot_kernel(GgmlType::Q4_K).map(|k| k.act),
        Some(GgmlType::Q8_K)
    );
    assert_eq!(
        dot_kernel(GgmlType::Q4_1).map(|k| k.act),
        Some(GgmlType::Q8_1)
    );
    assert!(dot_kernel(GgmlType::Q8_K).is_none());
}

#[test]
fn checked_dot_rejects_wrong_lengths() {
    let k = dot_kernel(GgmlType::Q4_0).expect("kernel");
    assert!(k.dot(64, &[0; 36], &[0; 68]).is_ok());
    assert!(k.dot(64, &[0; 35], &[0; 68]).is_err());
    assert!(k.dot(64, &[0; 36], &[0; 67]).is_err());
    assert!(k.dot(48, &[0; 27], &[0; 51]).is_err());
    // The raw function never reads past short input.
    assert_eq!((k.vec_dot)(64, &[0; 20], &[0; 3]), 0.0);
}

/// With amax = 127 the AVX scale is exactly 1, exposing the rounding of halves: to even.
#[test]
fn q8_0_activation_rounds_half_to_even() {
    let mut x = [0.0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = 3.5;
    x[3] = -2.5;
    x[4] = 0.5;
    x[5] = -126.5;
    let mut out = [0u8; 34];
    quantize_activation(GgmlType::Q8_0, &x, &mut out).expect("one block");
    assert_eq!(f16::from_le_bytes([out[0], out[1]]).to_f32(), 1.0);
    let q: Vec<i8> = out[2..8].iter().map(|&b| b as i8).collect();
    assert_eq!(q, [127, 2, 4, -2, 0, -126]);

    let mut out = [0u8; 36];
    quantize_activation(GgmlType::Q8_1, &x, &mut out).expect("one block");
    let sum = 127 + 2 + 4 - 2 - 126;
    assert_eq!(f16::from_le_bytes([out[2], out[3]]).to_f32(), sum as f32);
}

/// The AVX quantizer uses `127/amax`, not `1/(amax/127)`: the two differ for some amax.
#[test]
fn q8_0_activation_uses_127_over_amax() {
    let mut rng = Rng(3);
    for _ in 0..200 {
        let x: Vec<f32> = (0..32).map(|_| rng.unit() * 7.3).collect();
        let mut out = [0u8; 34];
        quantize_activation(GgmlType::Q8_0, &x, &mut out).expect("one block");
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let id = 127.0 / amax;
        for (j, &v) in x.iter().enumerate() {
            assert_eq!(out[2 + j] as i8, (v * id).round_ties_even() as i8);
        }
        assert_eq!(
            f16::from_le_bytes([out[0], out[1]]),
            f16::from_f32(amax / 127.0)
        );
    }
}

#[test]
fn q8_k_activation_follows_the_reference() {
    let mut x = [0.0f32; 256];
    x[3] = -127.0; // the first largest magnitude, negative: iscale = 1
    x[4] = 127.0;
    x[10] = 2.5;
    x[11] = -3.5;
    x[20] = 1.5;
    let mut out = [0u8; 292];
    quantize_activation(GgmlType::Q8_K, &x, &mut out).expect("one block");
    assert_eq!(f32::from_le_bytes([out[0], out[1], out[2], out[3]]), 1.0);
    let q = |i: usize| out[4 + i] as i8;
    assert_eq!((q(3), q(4), q(10), q(11), q(20)), (-127, 127, 2, -4, 2));
    let bsum = |j: usize| i16::from_le_bytes([out[260 + 2 * j], out[261 + 2 * j]]);
    // Group 0 holds -127, 127, 2 and -4.
    assert_eq!((bsum(0), bsum(1)), (-2, 2));

    // The sign of the first largest value sets the sign of d; the codes keep x's signs.
    let mut y = [0.0f32; 256];
    y[0] = 4.0;
    y[1] = -4.0;
    quantize_activation(GgmlType::Q8_K, &y, &mut out).expect("one block");
    let d = f32::from_le_bytes([out[0], out[1], out[2], out[3]]);
    assert!(d < 0.0);
    assert_eq!((out[4] as i8, out[5] as i8), (-127, 127));

    quantize_activation(GgmlType::Q8_K, &[0.0; 256], &mut out).expect("one block");
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn float_conversions_round_to_nearest_even() {
    let x = [
        1.0 + f32::EPSILON * 4096.0,
        1.0 + f32::EPSILON * 12288.0,
        -0.0,
        65520.0,
    ];
    let mut out = [0u8; 8];
    quantize_activation(GgmlType::F16, &x, &mut out).expect("f16");
    let h: Vec<u16> = out
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(h, [0x3c00, 0x3c02, 0x8000, 0x7c00]);

    let x = [
        f32::from_bits(0x3f80_8000),
        f32::from_bits(0x3f81_8000),
        f32::from_bits(0x7fc1_2345),
    ];
    let mut out = [0u8; 6];
    quantize_activation(GgmlType::BF16, &x, &mut out).expect("bf16");
    let b: Vec<u16> = out
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(b, [0x3f80, 0x3f82, 0x7fc1 | 64]);
    assert_eq!(bf16::from_bits(b[1]).to_f32(), f32::from_bits(0x3f82_0000));
}

#[test]
fn activation_and_storage_reject_other_types() {
    let mut out = [0u8; 64];
    assert!(quantize_activation(GgmlType::Q4_0, &[0.0; 32], &mut out[..18]).is_err());
    assert!(quantize_activation(GgmlType::Q8_0, &[0.0; 31], &mut out[..34]).is_err());
    assert!(quantize_activation(GgmlType::Q8_0, &[0.0; 32], &mut out[..33]).is_err());
    assert!(quantize_row(GgmlType::Q4_K, &[0.0; 256], &mut [0u8; 144]).is_err());
    assert!(quantize_row(GgmlType::Q4_0, &[0.0; 32], &mut out[..17]).is_err());
}

/// Storage quantizers: every value decodes back within half a quantization step (plus the f16
/// rounding of the scale), for each KV-cache type.
#[test]
fn storage_round_trip_error_is_bounded() {
    let mut rng = Rng(11);
    let types = [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 1.0 / 2048.0),
        (GgmlType::BF16, 1.0 / 256.0),
        (GgmlType::Q8_0, 0.5 / 127.0),
        (GgmlType::Q4_0, 1.0 / 8.0), // one full step where +8 clips to +7
        (GgmlType::Q4_1, 0.5 / 15.0),
        (GgmlType::Q5_0, 1.0 / 16.0),
        (GgmlType::Q5_1, 0.5 / 31.0),
    ];
    for (ty, step) in types {
        for _ in 0..50 {
            let x: Vec<f32> = (0..64).map(|_| rng.unit() * 5.0).collect();
            let mut out = vec![0u8; ty.row_bytes(64).expect("whole blocks") as usize];
            quantize_row(ty, &x, &mut out).expect("kv type");
            let back = dequant(ty, &out, 64);
            for block in 0..2 {
                let xs = &x[32 * block..32 * block + 32];
                let range = match ty {
                    GgmlType::Q4_1 | GgmlType::Q5_1 => {
                        xs.iter().fold(f32::MIN, |m, &v| m.max(v))
                            - xs.iter().fold(f32::MAX, |m, &v| m.min(v))
                    }
                    _ => xs.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                };
                for j in 32 * block..32 * block + 32 {
                    let bound = range * step * 1.01 + range * 2e-3 + 1e-6;
                    let bound = if ty == GgmlType::F32 { 0.0 } else { bound };
                    let err = (back[j] - x[j]).abs();
                    assert!(
                        err <= bound.max(x[j].abs() * step),
                        "{ty}: {} -> {}",
                        x[j],
                        back[j]
                    );
                }
            }
        }
    }
}

#[test]
fn iq4_nl_storage_picks_nearest_codes() {
    let mut rng = Rng(5);
    for _ in 0..50 {
        let x: Vec<f32> = (0..32).map(|_| rng.unit()).collect();
        let mut out = [0u8; 18];
        quantize_row(GgmlType::IQ4_NL, &x, &mut out).expect("iq4_nl");
        let back = dequant(GgmlType::IQ4_NL, &out, 32);
        let err: f32 = x.iter().zip(&back).map(|(a, b)| (a - b) * (a - b)).sum();
        let energy: f32 = x.iter().map(|a| a * a).sum();
        assert!(
            err < 0.02 * energy,
            "relative squared error {}",
            err / energy
        );
    }
}
