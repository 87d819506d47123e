//! Q4_1 panels: the layout and GEMM of [`super::panel`] for the legacy 32-element format
//! (small models such as SmolLM2 are mostly Q4_1).
//!
//! A panel block covers one 32-element block of 16 rows: 8 groups of 64 code bytes (elements
//! `4q..4q+4` of each row, unsigned nibbles), then `d` and `m` of each row as f32. Per Q8_1
//! activation block (`d_a`, `s_a = d_a·Σq`) a row's term is `d·d_a·Σ u·q + m·s_a`, the scalar
//! kernel's formula, added block after block.

use super::kquants512::ld512;
use super::panel::{transpose_16x16, ROWS};
use super::util::*;
use std::arch::x86_64::*;

/// Bytes of a Q4_1 weight block and of a Q8_1 activation block.
pub(super) const Q4_1_BLOCK: usize = 20;
pub(super) const Q8_1_BLOCK: usize = 36;
/// Bytes of one panel block: codes, then `d` and `m` per row.
pub(super) const PANEL_BLOCK: usize = 512 + 128;

/// Codes of blocks `x` and (when `second`) the next one of a row, in element order:
/// `[low nibbles, high nibbles]` of each block's 16 bytes.
#[inline(always)]
unsafe fn codes_pair(x: *const u8, second: bool) -> __m512i {
    let a = ld128(x.add(4));
    let b = if second {
        ld128(x.add(Q4_1_BLOCK + 4))
    } else {
        _mm_setzero_si128()
    };
    let v = _mm512_inserti32x4::<1>(_mm512_castsi128_si512(a), a);
    let v = _mm512_inserti32x4::<3>(_mm512_inserti32x4::<2>(v, b), b);
    let shifts = _mm512_set_epi64(
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
        0,
        0,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
        0,
        0,
    );
    _mm512_and_si512(_mm512_srlv_epi16(v, shifts), _mm512_set1_epi8(0x0f))
}

/// Decodes `nb` blocks of 16 rows (`x` = the rows' first blocks) into `panel`.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI present; each `x[i]` has `nb` blocks; `panel` holds `nb` panel
/// blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
pub(super) unsafe fn pack_q4_1(x: [*const u8; ROWS], nb: usize, panel: *mut u8) {
    let mut b = 0;
    while b < nb {
        let second = b + 1 < nb;
        let u: [__m512i; ROWS] =
            std::array::from_fn(|i| codes_pair(x[i].add(b * Q4_1_BLOCK), second));
        let cols = transpose_16x16(&u);
        for (j, col) in cols.iter().enumerate() {
            // Columns 0..8: quads of block b; 8..16: of block b + 1.
            if j < 8 || second {
                let at = (b + j / 8) * PANEL_BLOCK + 64 * (j % 8);
                _mm512_storeu_si512(panel.add(at) as *mut _, *col);
            }
        }
        for bb in b..(b + 2).min(nb) {
            let blk = panel.add(bb * PANEL_BLOCK + 512) as *mut f32;
            for (i, xi) in x.iter().enumerate() {
                let p = xi.add(bb * Q4_1_BLOCK);
                // The panel is a byte buffer: no alignment to rely on.
                blk.add(i).write_unaligned(f16_to_f32(rd_u16(p)));
                blk.add(ROWS + i)
                    .write_unaligned(f16_to_f32(rd_u16(p.add(2))));
            }
        }
        b += 2;
    }
}

/// The panel's rows · `T` Q8_1 activation rows: per row lane, the sum over `nb` blocks.
///
/// # Safety
/// AVX-512 F/BW/VL + VNNI present; `panel` holds `nb` panel blocks and every `y` row `nb`
/// Q8_1 blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
pub(super) unsafe fn gemm_q4_1<const T: usize>(
    panel: *const u8,
    nb: usize,
    y: [*const u8; T],
) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        let blk = panel.add(b * PANEL_BLOCK);
        let mut ints = [_mm512_setzero_si512(); T];
        for q in 0..8 {
            let w = ld512(blk.add(64 * q));
            for t in 0..T {
                let a = _mm512_set1_epi32(rd_u32(y[t].add(b * Q8_1_BLOCK + 4 + 4 * q)) as i32);
                ints[t] = _mm512_dpbusd_epi32(ints[t], w, a);
            }
        }
        let d = _mm512_loadu_ps(blk.add(512) as *const f32);
        let m = _mm512_loadu_ps(blk.add(512 + 64) as *const f32);
        for t in 0..T {
            // (d_a, s_a) of the activation block in lanes 0 and 1.
            let ds = rd_f16x2(y[t].add(b * Q8_1_BLOCK));
            let (da, sa) = (
                _mm512_broadcastss_ps(ds),
                _mm512_broadcastss_ps(_mm_movehdup_ps(ds)),
            );
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ints[t]), _mm512_mul_ps(d, da), acc[t]);
            acc[t] = _mm512_fmadd_ps(m, sa, acc[t]);
        }
    }
    acc
}
