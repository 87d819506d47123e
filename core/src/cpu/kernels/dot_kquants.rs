//! Dot products of the 256-element super-block formats with Q8_K activations: the k-quants,
//! IQ4_XS and the ternary TQ1_0 / TQ2_0.
//!
//! Structure of ggml's `*_q8_K_generic` kernels. Q3_K…Q6_K keep eight integer lanes per
//! super-block (lane l sums `scale · q8 · q` over the elements whose index is l mod 8), turn
//! each lane into `d · lane` and add it to one of eight f32 lane sums that are added together
//! only at the end of the row; mins are subtracted from a separate running sum. Q2_K, IQ4_XS and
//! the ternary formats add one float term per (sub-)block.

#![forbid(unsafe_code)]

use crate::quant::bytes::{f16_at, f32_at, i16_at, u16_at};
use crate::quant::grids::KVALUES_IQ4NL;
use crate::quant::iquants::iq4_xs_scale;
use crate::quant::kquants::{k4_scale_min, q3_k_scales, q6_k_half_codes};
use crate::quant::ternary::{tq1_values, tq2_value};

/// A Q8_K activation block: f32 scale, 256 codes, 16 group sums.
#[derive(Clone, Copy)]
pub(crate) struct Q8K<'a>(pub(crate) &'a [u8]);

impl Q8K<'_> {
    #[inline(always)]
    pub(crate) fn d(self) -> f32 {
        f32_at(self.0, 0)
    }
    #[inline(always)]
    pub(crate) fn q(self, i: usize) -> i32 {
        self.0[4 + i] as i8 as i32
    }
    #[inline(always)]
    pub(crate) fn bsum(self, j: usize) -> i32 {
        i16_at(self.0, 260 + 2 * j) as i32
    }
}

/// Q8_K activation blocks of a row.
pub(crate) fn q8k_blocks(a: &[u8]) -> impl Iterator<Item = Q8K<'_>> {
    a.chunks_exact(292).map(Q8K)
}

/// ggml's eight integer lanes: `lane[l] = Σ scale16[i/16] · q8[i] · code[i]` over i ≡ l (mod 8).
#[inline(always)]
fn lanes(codes: &[i8; 256], y: Q8K, scale16: &[i32; 16]) -> [i32; 8] {
    let mut lane = [0i32; 8];
    for (i, &c) in codes.iter().enumerate() {
        lane[i % 8] += scale16[i / 16] * (y.q(i) * c as i32);
    }
    lane
}

/// Adds `d · lane` to the running lane sums.
#[inline(always)]
fn add_lanes(sums: &mut [f32; 8], d: f32, lane: &[i32; 8]) {
    for (s, &l) in sums.iter_mut().zip(lane) {
        *s += d * l as f32;
    }
}

/// `sumf + Σ sums[l]`, in lane order.
#[inline(always)]
fn finish(mut sumf: f32, sums: &[f32; 8]) -> f32 {
    for &s in sums {
        sumf += s;
    }
    sumf
}

/// Q2_K: `sumf += dall·isum − dmin·summs`, with `dall = y.d·d`, `dmin = y.d·dmin`.
pub(crate) fn dot_q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(84).zip(q8k_blocks(a)).take(n / 256) {
        let sc = &x[0..16];
        let summs: i32 = (0..16).map(|j| y.bsum(j) * (sc[j] >> 4) as i32).sum();
        let dall = y.d() * f16_at(x, 80);
        let dmin = y.d() * f16_at(x, 82);
        let mut isum = 0i32;
        for (g, &sc) in sc.iter().enumerate() {
            // Group g: half g/8, shift 2·((g%8)/2), bytes 16·(g%2).. of that half's 32 bytes.
            let (half, shift, first) = (g / 8, 2 * ((g % 8) / 2), 16 * (g % 2));
            let q2 = &x[16 + 32 * half + first..16 + 32 * half + first + 16];
            let mut isuml = 0i32;
            for (l, &q) in q2.iter().enumerate() {
                isuml += y.q(16 * g + l) * ((q >> shift) & 3) as i32;
            }
            isum += (sc & 15) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub(crate) fn dot_q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in w.chunks_exact(110).zip(q8k_blocks(a)).take(n / 256) {
        let hm = &x[0..32];
        let mut codes = [0i8; 256];
        let mut m = 1u8;
        for half in 0..2 {
            let q3 = &x[32 + 32 * half..64 + 32 * half];
            for shift in 0..4 {
                let out = &mut codes[128 * half + 32 * shift..128 * half + 32 * shift + 32];
                for l in 0..32 {
                    let low = ((q3[l] >> (2 * shift)) & 3) as i8;
                    out[l] = low - if hm[l] & m != 0 { 0 } else { 4 };
                }
                m <<= 1;
            }
        }
        let scale16 = q3_k_scales(&x[96..108]).map(|s| s as i32);
        let d = f16_at(x, 108) * y.d();
        add_lanes(&mut sums, d, &lanes(&codes, y, &scale16));
    }
    finish(0.0, &sums)
}

/// The shared body of Q4_K and Q5_K: `codes` builds the 256 unsigned codes of a block.
#[inline(always)]
fn dot_k4(n: usize, w: &[u8], a: &[u8], size: usize, codes: impl Fn(&[u8]) -> [i8; 256]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(size).zip(q8k_blocks(a)).take(n / 256) {
        let packed = &x[4..16];
        let mut scale16 = [0i32; 16];
        let mut sumi = 0i32;
        for j in 0..8 {
            let (sc, mn) = k4_scale_min(j, packed);
            scale16[2 * j] = sc as i32;
            scale16[2 * j + 1] = sc as i32;
            sumi += (y.bsum(2 * j) + y.bsum(2 * j + 1)) * mn as i32;
        }
        let d = f16_at(x, 0) * y.d();
        add_lanes(&mut sums, d, &lanes(&codes(x), y, &scale16));
        let dmin = f16_at(x, 2) * y.d();
        sumf -= dmin * sumi as f32;
    }
    finish(sumf, &sums)
}

pub(crate) fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_k4(n, w, a, 144, |x| {
        let mut c = [0i8; 256];
        for chunk in 0..4 {
            let q = &x[16 + 32 * chunk..48 + 32 * chunk];
            for l in 0..32 {
                c[64 * chunk + l] = (q[l] & 15) as i8;
                c[64 * chunk + 32 + l] = (q[l] >> 4) as i8;
            }
        }
        c
    })
}

pub(crate) fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_k4(n, w, a, 176, |x| {
        let qh = &x[16..48];
        let mut c = [0i8; 256];
        for chunk in 0..4 {
            let q = &x[48 + 32 * chunk..80 + 32 * chunk];
            let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
            for l in 0..32 {
                c[64 * chunk + l] = ((q[l] & 15) + if qh[l] & u1 != 0 { 16 } else { 0 }) as i8;
                c[64 * chunk + 32 + l] = ((q[l] >> 4) + if qh[l] & u2 != 0 { 16 } else { 0 }) as i8;
            }
        }
        c
    })
}

pub(crate) fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in w.chunks_exact(210).zip(q8k_blocks(a)).take(n / 256) {
        let mut codes = [0i8; 256];
        for half in 0..2 {
            let q = q6_k_half_codes(
                &x[64 * half..64 * half + 64],
                &x[128 + 32 * half..160 + 32 * half],
            );
            codes[128 * half..128 * half + 128].copy_from_slice(&q);
        }
        let mut scale16 = [0i32; 16];
        for (s, &b) in scale16.iter_mut().zip(&x[192..208]) {
            *s = b as i8 as i32;
        }
        let d = f16_at(x, 208) * y.d();
        add_lanes(&mut sums, d, &lanes(&codes, y, &scale16));
    }
    finish(0.0, &sums)
}

/// IQ4_XS: per 32-element sub-block `sumf += (d·y.d·(ls − 32))·sumi`.
pub(crate) fn dot_iq4_xs(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(136).zip(q8k_blocks(a)).take(n / 256) {
        let d4d8 = f16_at(x, 0) * y.d();
        let scales_h = u16_at(x, 2);
        for ib in 0..8 {
            let dl = d4d8 * (iq4_xs_scale(scales_h, &x[4..8], ib) - 32) as f32;
            let qs = &x[8 + 16 * ib..24 + 16 * ib];
            let (mut lo, mut hi) = (0i32, 0i32);
            for j in 0..16 {
                lo += y.q(32 * ib + j) * KVALUES_IQ4NL[(qs[j] & 15) as usize] as i32;
                hi += y.q(32 * ib + 16 + j) * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
            }
            sumf += dl * (lo + hi) as f32;
        }
    }
    sumf
}

/// TQ1_0: `sumf += sum·(d·y.d)`.
pub(crate) fn dot_tq1_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(54).zip(q8k_blocks(a)).take(n / 256) {
        let values = tq1_values(x);
        let sum: i32 = (0..256).map(|i| values[i] as i32 * y.q(i)).sum();
        sumf += sum as f32 * (f16_at(x, 52) * y.d());
    }
    sumf
}

/// TQ2_0: `sumf += sumi·(y.d·d)`.
pub(crate) fn dot_tq2_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(66).zip(q8k_blocks(a)).take(n / 256) {
        let sumi: i32 = (0..256).map(|i| tq2_value(&x[0..64], i) * y.q(i)).sum();
        sumf += sumi as f32 * (y.d() * f16_at(x, 64));
    }
    sumf
}
