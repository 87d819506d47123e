//! Shared helpers of the GPU parity tests: random data, random valid weight blocks for every
//! type, the error measure, and running a future to completion.

#![allow(dead_code)]

use sluice_core::backend::{Backend, WeightBytes, WeightData};
use sluice_core::quant::GgmlType;
use std::sync::Arc;

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn floats(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `rows` rows of `cols` values of `ty`: plain types from uniform floats, block types from
/// random bytes, redrawing any block whose values are not finite or exceed 1000 in magnitude
/// (random f16 scales can be huge or NaN).
pub fn random_weight_bytes(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let info = ty.info().expect("known type");
    let n = rows * cols;
    if info.block_elems == 1 {
        let v = rng.floats(n);
        return match ty {
            GgmlType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            GgmlType::F16 => v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            GgmlType::BF16 => v
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect(),
            _ => panic!("no generator for {ty}"),
        };
    }
    let (be, bb) = (info.block_elems as usize, info.block_bytes as usize);
    let mut out = Vec::with_capacity(n / be * bb);
    let mut block = vec![0u8; bb];
    let mut vals = vec![0f32; be];
    for _ in 0..n / be {
        loop {
            for b in block.iter_mut() {
                *b = rng.next_u64() as u8;
            }
            ty.dequantize(&block, &mut vals).expect("block size");
            if vals.iter().all(|v| v.is_finite() && v.abs() <= 1000.0) {
                break;
            }
        }
        out.extend_from_slice(&block);
    }
    out
}

pub fn weight_data(
    name: &str,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    mats: usize,
    bytes: Vec<u8>,
) -> WeightData {
    WeightData {
        name: name.into(),
        ty,
        cols,
        rows,
        mats,
        bytes: WeightBytes::Owned(Arc::new(bytes)),
    }
}

/// Σ(a − b)² / Σb² (plain squared error when b is all zero).
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mut err = 0f64;
    let mut norm = 0f64;
    for (&a, &b) in got.iter().zip(want) {
        err += (a as f64 - b as f64).powi(2);
        norm += (b as f64).powi(2);
    }
    if norm == 0.0 {
        err
    } else {
        err / norm
    }
}

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    sluice_core::source::block_on(f)
}

/// Downloads a tensor of any backend.
pub fn host<B: Backend>(b: &B, t: &B::Tensor) -> Vec<f32> {
    run(b.download(t)).expect("download")
}
