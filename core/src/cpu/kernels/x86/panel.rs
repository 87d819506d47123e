//! Batched k-quant matmul (AVX-512 VNNI) on "panels": 16 weight rows decoded once into a
//! row-interleaved layout, then multiplied with many activation rows.
//!
//! The one-row kernels spend most of a prompt's time outside the multiplies: every 256-element
//! block of every (weight row, token) pair ends with a horizontal fold of its integer lanes and
//! its own scale products. Here a vector lane is a weight row instead: the 64-byte group `q` of
//! a panel block holds elements `4q..4q+4` of each of the 16 rows, so `vpdpbusd` with the
//! token's 4 activation bytes broadcast adds 4 products to each of 16 rows at once, and every
//! per-block step (scale multiply, mins, the float update) is done for 16 rows by one
//! instruction. Matmul decodes a task's rows into a panel in L2 (the weights themselves stay
//! in the mapped file) and reuses it for all of a batch's tokens.
//!
//! # Panel block layout (one per 256-element super-block)
//!
//! | bytes | contents |
//! |---|---|
//! | 4096 | codes: `[64 quads][16 rows][4]` unsigned, `u = code + offset` (or `u·scale`, see Q2_K) |
//! | 64·G | scales: `[G groups][16 rows]` i32 (G = 8 for Q4_K/Q5_K, 16 for Q3_K/Q6_K, 0 for Q2_K) |
//! | 512 | mins: `[8 pairs][16 rows][2]` i16, the multiplier of each 16-element group's sum |
//! | 64 | `d` per row (f32) |
//! | 64 | `e` per row (f32): `dmin`, or `d` for the offset formats |
//!
//! A row's block sum is `d·Σ_g scale_g·Σ_{i∈g} u_i·q_i − e·Σ_g min_g·bsum_g`, times the
//! activation's `d`. With the offset formats (Q3_K `u = c + 4`, Q6_K `u = c + 32`) `min_g` is
//! `offset·scale_g` and `e = d`; with the min formats (Q2_K, Q4_K, Q5_K) it is the block's min
//! and `e = dmin`. Q2_K's scales (≤ 15) times its codes (≤ 3) fit in a byte, so its panel
//! stores `u·scale` and needs no per-group multiply.
//!
//! The integer sums are exact; the float terms are added block after block per row (the
//! one-row kernels add them in 8 lanes and sum the lanes at the end), a difference within the
//! rounding bound the kernel tests check.

use super::kquants::{k4_scales, Q8K};
use super::kquants512::{ld512, q2_k_codes, q3_k_codes, q4_k_codes, q5_k_codes, q6_k_codes};
use super::panel_legacy;
use super::util::*;
use crate::quant::GgmlType;
use std::arch::x86_64::*;

/// Weight rows per panel (one per 32-bit lane of a 512-bit vector).
pub(crate) const ROWS: usize = 16;

const CODES: usize = 4096;
const MINS: usize = 512;

/// The per-block numbers of one weight row, decoded by scalar code.
struct Meta {
    d: f32,
    e: f32,
    /// Per scale group (16 or 8 used).
    scales: [i32; 16],
    /// Per 16-element group: the multiplier of the activation's group sum.
    mins: [i16; 16],
}

/// How one k-quant format fills a panel.
struct Format {
    block_bytes: usize,
    /// Scale groups per block (0: scales folded into the codes).
    groups: usize,
    meta: fn(&[u8]) -> Meta,
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn q2_k_meta(b: &[u8]) -> Meta {
    let mut mins = [0i16; 16];
    for (g, m) in mins.iter_mut().enumerate() {
        *m = (b[g] >> 4) as i16;
    }
    Meta {
        d: f16_at(b, 80),
        e: f16_at(b, 82),
        scales: [1; 16],
        mins,
    }
}

fn q3_k_meta(b: &[u8]) -> Meta {
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (a0, a1, a2) = (word(96), word(100), word(104));
    let (lo, hi) = (0x0f0f_0f0fu32, 0x0303_0303u32);
    let words = [
        (a0 & lo) | ((a2 & hi) << 4),
        (a1 & lo) | (((a2 >> 2) & hi) << 4),
        ((a0 >> 4) & lo) | (((a2 >> 4) & hi) << 4),
        ((a1 >> 4) & lo) | (((a2 >> 6) & hi) << 4),
    ];
    let (mut scales, mut mins) = ([0i32; 16], [0i16; 16]);
    for g in 0..16 {
        let s = (words[g / 4] >> (8 * (g % 4))) as u8 as i32 - 32;
        scales[g] = s;
        mins[g] = (4 * s) as i16;
    }
    let d = f16_at(b, 108);
    Meta {
        d,
        e: d,
        scales,
        mins,
    }
}

fn k4_meta(b: &[u8]) -> Meta {
    // SAFETY: a Q4_K / Q5_K block has 12 scale bytes at 4.
    let (sc, mn) = unsafe { k4_scales(b[4..16].as_ptr()) };
    let (mut scales, mut mins) = ([0i32; 16], [0i16; 16]);
    for g in 0..8 {
        scales[g] = ((sc >> (8 * g)) & 0xff) as i32;
        let m = ((mn >> (8 * g)) & 0xff) as i16;
        mins[2 * g] = m;
        mins[2 * g + 1] = m;
    }
    Meta {
        d: f16_at(b, 0),
        e: f16_at(b, 2),
        scales,
        mins,
    }
}

fn q6_k_meta(b: &[u8]) -> Meta {
    let (mut scales, mut mins) = ([0i32; 16], [0i16; 16]);
    for g in 0..16 {
        let s = b[192 + g] as i8 as i32;
        scales[g] = s;
        mins[g] = (32 * s) as i16;
    }
    let d = f16_at(b, 208);
    Meta {
        d,
        e: d,
        scales,
        mins,
    }
}

/// Q2_K codes with the 16-element groups' scales multiplied in (`u·s ≤ 45`).
#[inline(always)]
unsafe fn q2_k_scaled_codes(x: *const u8, p: usize) -> __m512i {
    let u = q2_k_codes(x, p);
    // Scale bytes of groups 4p..4p+4, 16 bytes each (one group per 128-bit lane).
    let sc = _mm512_and_si512(_mm512_broadcast_i32x4(ld128(x)), _mm512_set1_epi8(0x0f));
    let lane = _mm512_set_epi32(
        0x0303_0303,
        0x0303_0303,
        0x0303_0303,
        0x0303_0303,
        0x0202_0202,
        0x0202_0202,
        0x0202_0202,
        0x0202_0202,
        0x0101_0101,
        0x0101_0101,
        0x0101_0101,
        0x0101_0101,
        0,
        0,
        0,
        0,
    );
    let s = _mm512_shuffle_epi8(sc, _mm512_add_epi8(lane, _mm512_set1_epi8(4 * p as i8)));
    // Byte products through 16-bit multiplies: even bytes, then odd bytes.
    let low = _mm512_set1_epi16(0x00ff);
    let even = _mm512_and_si512(_mm512_mullo_epi16(u, s), low);
    let odd = _mm512_mullo_epi16(_mm512_srli_epi16::<8>(u), _mm512_andnot_si512(low, s));
    _mm512_or_si512(even, odd)
}

/// The one list of k-quant panel formats: weight block bytes, scale groups per block, the
/// chunk-pair code decoder and the per-block numbers. Stamps [`format`] and [`block_codes`].
macro_rules! panel_formats {
    ($($ty:ident: $bytes:expr, $groups:expr, $codes:ident, $meta:ident;)*) => {
        fn format(ty: GgmlType) -> Option<&'static Format> {
            match ty {
                $(GgmlType::$ty => Some(&Format {
                    block_bytes: $bytes,
                    groups: $groups,
                    meta: $meta,
                }),)*
                _ => None,
            }
        }

        /// Chunk pair `p` of the block at `x` as unsigned codes (zero for a type without a
        /// panel format, which [`pack`] never passes).
        #[inline(always)]
        unsafe fn block_codes(ty: GgmlType, x: *const u8, p: usize) -> __m512i {
            match ty {
                $(GgmlType::$ty => $codes(x, p),)*
                _ => _mm512_setzero_si512(),
            }
        }
    };
}

panel_formats! {
    Q2_K: 84, 0, q2_k_scaled_codes, q2_k_meta;
    Q3_K: 110, 16, q3_k_codes, q3_k_meta;
    Q4_K: 144, 8, q4_k_codes, k4_meta;
    Q5_K: 176, 8, q5_k_codes, k4_meta;
    Q6_K: 210, 16, q6_k_codes, q6_k_meta;
}

fn panel_block_bytes(f: &Format) -> usize {
    CODES + 64 * f.groups + MINS + 2 * 64
}

/// 16 rows of 16 dwords → 16 columns: `out[j]` lane `i` = `rows[i]` lane `j`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn transpose_16x16(rows: &[__m512i; 16]) -> [__m512i; 16] {
    // Within each 128-bit lane, 4×4 transposes of the row quads (4g..4g+4):
    // v[g][c] lane L = column 4L + c of rows 4g..4g+4.
    let mut v = [[_mm512_setzero_si512(); 4]; 4];
    for g in 0..4 {
        let r = &rows[4 * g..4 * g + 4];
        let (ab_lo, ab_hi) = (
            _mm512_unpacklo_epi32(r[0], r[1]),
            _mm512_unpackhi_epi32(r[0], r[1]),
        );
        let (cd_lo, cd_hi) = (
            _mm512_unpacklo_epi32(r[2], r[3]),
            _mm512_unpackhi_epi32(r[2], r[3]),
        );
        v[g] = [
            _mm512_unpacklo_epi64(ab_lo, cd_lo),
            _mm512_unpackhi_epi64(ab_lo, cd_lo),
            _mm512_unpacklo_epi64(ab_hi, cd_hi),
            _mm512_unpackhi_epi64(ab_hi, cd_hi),
        ];
    }
    // Then a 4×4 transpose of 128-bit lanes across the four row quads.
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let s0 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v[0][c], v[1][c]);
        let s1 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v[0][c], v[1][c]);
        let s2 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v[2][c], v[3][c]);
        let s3 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v[2][c], v[3][c]);
        out[c] = _mm512_shuffle_i32x4::<0b10_00_10_00>(s0, s2);
        out[4 + c] = _mm512_shuffle_i32x4::<0b11_01_11_01>(s0, s2);
        out[8 + c] = _mm512_shuffle_i32x4::<0b10_00_10_00>(s1, s3);
        out[12 + c] = _mm512_shuffle_i32x4::<0b11_01_11_01>(s1, s3);
    }
    out
}

/// Writes the codes of block `x[i]` of the 16 rows into the interleaved layout at `codes`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
unsafe fn pack_codes(ty: GgmlType, x: [*const u8; ROWS], codes: *mut u8) {
    for p in 0..4 {
        let mut u = [_mm512_setzero_si512(); ROWS];
        for (i, u) in u.iter_mut().enumerate() {
            *u = block_codes(ty, x[i], p);
        }
        // Quad j of chunk pair p is quad 16p + j of the block.
        for (j, col) in transpose_16x16(&u).iter().enumerate() {
            _mm512_storeu_si512(codes.add(64 * (16 * p + j)) as *mut _, *col);
        }
    }
}

/// The panel's rows `dot` `T` activation rows: per row lane, the sum over `nb` blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
unsafe fn gemm<const T: usize, const G: usize>(
    panel: *const u8,
    nb: usize,
    y: [*const u8; T],
) -> [__m512; T] {
    let block_bytes = CODES + 64 * G + MINS + 128;
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        let blk = panel.add(b * block_bytes);
        let ya = |t: usize, at: usize| y[t].add(b * Q8K + at);
        let bcast = |p: *const u8| _mm512_set1_epi32(rd_u32(p) as i32);
        let mut ints = [_mm512_setzero_si512(); T];
        match 64usize.checked_div(G) {
            // Q2_K: the scales are folded into the codes.
            None => {
                for q in 0..64 {
                    let w = ld512(blk.add(64 * q));
                    for (t, i) in ints.iter_mut().enumerate() {
                        *i = _mm512_dpbusd_epi32(*i, w, bcast(ya(t, 4 + 4 * q)));
                    }
                }
            }
            Some(quads) => {
                for g in 0..G {
                    let mut sub = [_mm512_setzero_si512(); T];
                    for qq in 0..quads {
                        let q = g * quads + qq;
                        let w = ld512(blk.add(64 * q));
                        for (t, s) in sub.iter_mut().enumerate() {
                            *s = _mm512_dpbusd_epi32(*s, w, bcast(ya(t, 4 + 4 * q)));
                        }
                    }
                    let s = ld512(blk.add(CODES + 64 * g));
                    for t in 0..T {
                        ints[t] = _mm512_add_epi32(ints[t], _mm512_mullo_epi32(sub[t], s));
                    }
                }
            }
        }
        let mins = blk.add(CODES + 64 * G);
        let mut m = [_mm512_setzero_si512(); T];
        for p in 0..8 {
            let mv = ld512(mins.add(64 * p));
            for (t, m) in m.iter_mut().enumerate() {
                *m = _mm512_dpwssd_epi32(*m, mv, bcast(ya(t, 260 + 4 * p)));
            }
        }
        let d = _mm512_loadu_ps(mins.add(MINS) as *const f32);
        let e = _mm512_loadu_ps(mins.add(MINS + 64) as *const f32);
        for t in 0..T {
            let yd = _mm512_set1_ps(rd_f32(ya(t, 0)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ints[t]), _mm512_mul_ps(d, yd), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m[t]), _mm512_mul_ps(e, yd), acc[t]);
        }
    }
    acc
}

/// `out[i·n + t]` for the `T` tokens starting at `t0`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
unsafe fn gemm_into<const T: usize>(
    kind: Kind,
    panel: *const u8,
    nb: usize,
    y: [*const u8; T],
    out: &mut [f32],
    n: usize,
    t0: usize,
) {
    let acc = match kind {
        Kind::Q4_1 => panel_legacy::gemm_q4_1::<T>(panel, nb, y),
        Kind::KQuant { groups: 0 } => gemm::<T, 0>(panel, nb, y),
        Kind::KQuant { groups: 8 } => gemm::<T, 8>(panel, nb, y),
        Kind::KQuant { .. } => gemm::<T, 16>(panel, nb, y),
    };
    for (t, a) in acc.iter().enumerate() {
        let mut lanes = [0f32; ROWS];
        _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
        for (i, v) in lanes.iter().enumerate() {
            out[i * n + t0 + t] = *v;
        }
    }
}

/// The two panel families.
#[derive(Clone, Copy)]
enum Kind {
    /// 256-element super-blocks, Q8_K activations; `groups` as in [`Format`].
    KQuant { groups: usize },
    /// Q4_1 (32-element blocks, Q8_1 activations; see `panel_legacy`).
    Q4_1,
}

/// Elements per block, weight block bytes, activation block bytes and panel block bytes.
fn geometry(ty: GgmlType) -> Option<(Kind, usize, usize, usize, usize)> {
    if ty == GgmlType::Q4_1 {
        return Some((
            Kind::Q4_1,
            32,
            panel_legacy::Q4_1_BLOCK,
            panel_legacy::Q8_1_BLOCK,
            panel_legacy::PANEL_BLOCK,
        ));
    }
    let f = format(ty)?;
    let kind = Kind::KQuant { groups: f.groups };
    Some((kind, 256, f.block_bytes, Q8K, panel_block_bytes(f)))
}

/// Panel bytes for rows of `cols` columns of `ty` (None: no panel kernel for `ty`, or `cols`
/// is not whole blocks).
pub(crate) fn panel_bytes(ty: GgmlType, cols: usize) -> Option<usize> {
    let (_, elems, _, _, pb) = geometry(ty)?;
    (cols > 0 && cols.is_multiple_of(elems)).then_some(cols / elems * pb)
}

/// Decodes [`ROWS`] weight rows (`row_bytes` apart in `w`, `cols` columns of `ty`) into
/// `panel`. False (and nothing written) when the CPU lacks AVX-512 VNNI, `ty` has no panel
/// kernel or a slice is too short.
pub(crate) fn pack(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    row_bytes: usize,
    panel: &mut [u8],
) -> bool {
    let (Some((kind, elems, wb, _, pb)), Some(bytes)) = (geometry(ty), panel_bytes(ty, cols))
    else {
        return false;
    };
    let nb = cols / elems;
    if !super::available_wide()
        || row_bytes < nb * wb
        || w.len() < (ROWS - 1) * row_bytes + nb * wb
        || panel.len() < bytes
    {
        return false;
    }
    let Kind::KQuant { .. } = kind else {
        let x: [*const u8; ROWS] = std::array::from_fn(|i| w[i * row_bytes..].as_ptr());
        // SAFETY: features checked; each row holds nb blocks and the panel nb panel blocks.
        unsafe { panel_legacy::pack_q4_1(x, nb, panel.as_mut_ptr()) };
        return true;
    };
    let f = format(ty).expect("k-quant");
    for b in 0..nb {
        let blk = &mut panel[b * pb..(b + 1) * pb];
        let block = |i: usize| &w[i * row_bytes + b * f.block_bytes..][..f.block_bytes];
        let x: [*const u8; ROWS] = std::array::from_fn(|i| block(i).as_ptr());
        // SAFETY: features checked; each `x[i]` is one whole block (sliced above) and `blk`
        // holds the 4096 code bytes.
        unsafe { pack_codes(ty, x, blk.as_mut_ptr()) };
        let mut scales = [[0i32; ROWS]; 16];
        let mut mins = [[[0i16; 2]; ROWS]; 8];
        let (mut d, mut e) = ([0f32; ROWS], [0f32; ROWS]);
        for i in 0..ROWS {
            let meta = (f.meta)(block(i));
            for (g, s) in scales.iter_mut().enumerate().take(f.groups) {
                s[i] = meta.scales[g];
            }
            for (g, m) in mins.iter_mut().enumerate() {
                m[i] = [meta.mins[2 * g], meta.mins[2 * g + 1]];
            }
            (d[i], e[i]) = (meta.d, meta.e);
        }
        let (_, rest) = blk.split_at_mut(CODES);
        let (s, rest) = rest.split_at_mut(64 * f.groups);
        s.copy_from_slice(bytemuck::cast_slice(&scales[..f.groups]));
        let (m, rest) = rest.split_at_mut(MINS);
        m.copy_from_slice(bytemuck::cast_slice(&mins));
        rest[..64].copy_from_slice(bytemuck::cast_slice(&d));
        rest[64..128].copy_from_slice(bytemuck::cast_slice(&e));
    }
    true
}

/// Tokens per GEMM call: four accumulator sets of three vectors stay in registers.
const TOKENS: usize = 4;

/// `out[i·n + t] = panel row i · activation row t` for `n` Q8_K activation rows `stride`
/// bytes apart. False (nothing written) when the CPU lacks AVX-512 VNNI or a slice is short.
pub(crate) fn gemm_rows(
    ty: GgmlType,
    cols: usize,
    panel: &[u8],
    acts: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
) -> bool {
    let (Some((kind, elems, _, ab, _)), Some(bytes)) = (geometry(ty), panel_bytes(ty, cols)) else {
        return false;
    };
    let nb = cols / elems;
    if n == 0 {
        return true;
    }
    if !super::available_wide()
        || panel.len() < bytes
        || stride < nb * ab
        || acts.len() < (n - 1) * stride + nb * ab
        || out.len() < ROWS * n
    {
        return false;
    }
    let (p, a) = (panel.as_ptr(), acts.as_ptr());
    let y = |t: usize| a.wrapping_add(t * stride);
    let mut t = 0;
    // SAFETY: features checked; every activation row t < n holds nb blocks and the panel nb
    // panel blocks (checked above); `out` indices stay below ROWS·n.
    unsafe {
        while t + 8 <= n {
            let ys = [
                y(t),
                y(t + 1),
                y(t + 2),
                y(t + 3),
                y(t + 4),
                y(t + 5),
                y(t + 6),
                y(t + 7),
            ];
            gemm_into::<8>(kind, p, nb, ys, out, n, t);
            t += 8;
        }
        while t + TOKENS <= n {
            gemm_into::<TOKENS>(kind, p, nb, [y(t), y(t + 1), y(t + 2), y(t + 3)], out, n, t);
            t += TOKENS;
        }
        if t + 2 <= n {
            gemm_into::<2>(kind, p, nb, [y(t), y(t + 1)], out, n, t);
            t += 2;
        }
        if t < n {
            gemm_into::<1>(kind, p, nb, [y(t)], out, n, t);
        }
    }
    true
}
