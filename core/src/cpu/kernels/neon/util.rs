//! Small NEON building blocks shared by the aarch64 kernels: unaligned loads through raw
//! pointers, f16 widening, the exact signed 8-bit products and the sign masks of the grid
//! i-quants.
//!
//! The integer products never leave exact arithmetic. On the plain path ([`Plain`]) `vmull_s8`
//! forms i16 products, at most two (or four, where the codes are small enough; see [`Dot`]) are
//! added per i16 lane, and the lanes are widened to i32 (`vpadalq_s16` or a multiply-accumulate
//! by the group's integer scale) before anything else is added. With activation codes in
//! −127..=127, as the Q8 quantizers produce, no i16 lane can overflow. The `sdot` path
//! ([`SDot`]) sums four products straight into each i32 lane.
//!
//! The functions are `unsafe`: the pointer readers because callers guarantee that each pointer
//! is valid for the bytes read, the others because NEON intrinsics may only be called from
//! `unsafe` code outside `#[target_feature]` functions (NEON itself is baseline on aarch64, so
//! they need no feature check).

pub(super) use super::super::raw::{f16_to_f32, rd_f32, rd_u16, rd_u32};
use std::arch::aarch64::*;

#[inline(always)]
pub(super) unsafe fn ld_s8(p: *const u8) -> int8x16_t {
    vld1q_s8(p as *const i8)
}

#[inline(always)]
pub(super) unsafe fn ld_u8(p: *const u8) -> uint8x16_t {
    vld1q_u8(p)
}

/// Eight little-endian i16 values from a byte pointer with no alignment requirement.
#[inline(always)]
pub(super) unsafe fn ld_s16(p: *const u8) -> int16x8_t {
    vreinterpretq_s16_u8(vld1q_u8(p))
}

#[inline(always)]
pub(super) unsafe fn rd_f16(p: *const u8) -> f32 {
    f16_to_f32(rd_u16(p))
}

/// Sixteen signed bytes times sixteen signed bytes as eight i16 lanes, each the sum of two
/// products (`a[i]·b[i] + a[i+8]·b[i+8]`). Exact when `|a|·|b|` ≤ 16383 per product.
#[inline(always)]
pub(super) unsafe fn mul_pairs(a: int8x16_t, b: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b)
}

/// `acc` plus two more products per i16 lane (the caller bounds the lane sums below 2¹⁵).
#[inline(always)]
pub(super) unsafe fn mla_pairs(acc: int16x8_t, a: int8x16_t, b: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmlal_s8(acc, vget_low_s8(a), vget_low_s8(b)), a, b)
}

/// `acc + scale·p`, the eight i16 lanes widened into four i32 lanes (exact).
#[inline(always)]
pub(super) unsafe fn add_scaled(acc: int32x4_t, p: int16x8_t, scale: i16) -> int32x4_t {
    vmlal_high_n_s16(vmlal_n_s16(acc, vget_low_s16(p), scale), p, scale)
}

/// Σ a·b over 16 signed bytes, added into four i32 lanes with no i16 intermediate sum: exact
/// for any bytes, −128 included.
#[inline(always)]
pub(super) unsafe fn dot16_wide(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    vpadalq_s16(acc, vmull_high_s8(a, b))
}

/// How a kernel forms the exact i32 sums of signed byte products: plain NEON widening
/// multiplies ([`Plain`]) or the `sdot` instruction of the dot-product extension ([`SDot`]).
/// Both give the same integers; only how they are spread over the four i32 lanes differs, so
/// results may differ in the last bits of the float sums (each path is checked against the
/// scalar kernels).
pub(super) trait Dot {
    /// Σ a·b of 32 products in four i32 lanes, for codes with |a| ≤ 127 (two products per i16
    /// lane on the plain path).
    unsafe fn sum32(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t;
    /// As [`Dot::sum32`] for any bytes, −128 included.
    unsafe fn sum32_wide(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t;
    /// As [`Dot::sum32`] for codes with |a| ≤ 63 (four products per i16 lane on the plain path).
    unsafe fn sum32_small(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t;
    /// `acc + scale·Σ a·b` over 16 products (|a| ≤ 127).
    unsafe fn scaled16(acc: int32x4_t, a: int8x16_t, b: int8x16_t, scale: i16) -> int32x4_t;
    /// `acc + scale·Σ a·b` over 32 products (|a| ≤ 63).
    unsafe fn scaled32_small(
        acc: int32x4_t,
        a: (int8x16_t, int8x16_t),
        b0: int8x16_t,
        b1: int8x16_t,
        scale: i16,
    ) -> int32x4_t;
}

/// Widening multiplies (`smull`/`smlal`), available on every aarch64 CPU.
pub(super) struct Plain;

impl Dot for Plain {
    #[inline(always)]
    unsafe fn sum32(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        vpadalq_s16(vpaddlq_s16(mul_pairs(a.0, b0)), mul_pairs(a.1, b1))
    }
    #[inline(always)]
    unsafe fn sum32_wide(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        dot16_wide(dot16_wide(vdupq_n_s32(0), a.0, b0), a.1, b1)
    }
    #[inline(always)]
    unsafe fn sum32_small(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        vpaddlq_s16(mla_pairs(mul_pairs(a.0, b0), a.1, b1))
    }
    #[inline(always)]
    unsafe fn scaled16(acc: int32x4_t, a: int8x16_t, b: int8x16_t, scale: i16) -> int32x4_t {
        add_scaled(acc, mul_pairs(a, b), scale)
    }
    #[inline(always)]
    unsafe fn scaled32_small(
        acc: int32x4_t,
        a: (int8x16_t, int8x16_t),
        b0: int8x16_t,
        b1: int8x16_t,
        scale: i16,
    ) -> int32x4_t {
        add_scaled(acc, mla_pairs(mul_pairs(a.0, b0), a.1, b1), scale)
    }
}

/// The `sdot` instruction (Armv8.2 dot-product extension, FEAT_DotProd): four products per i32
/// lane in one instruction. Callers check `is_aarch64_feature_detected!("dotprod")`.
pub(super) struct SDot;

/// `acc + Σ` of four adjacent products per i32 lane. Inline assembly because the `vdotq_s32`
/// intrinsic is not yet stable; the directive lets the assembler accept the instruction in any
/// function (the caller guarantees the CPU has it).
#[inline(always)]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    std::arch::asm!(
        ".arch_extension dotprod",
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

impl Dot for SDot {
    #[inline(always)]
    unsafe fn sum32(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        sdot(sdot(vdupq_n_s32(0), a.0, b0), a.1, b1)
    }
    #[inline(always)]
    unsafe fn sum32_wide(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        Self::sum32(a, b0, b1)
    }
    #[inline(always)]
    unsafe fn sum32_small(a: (int8x16_t, int8x16_t), b0: int8x16_t, b1: int8x16_t) -> int32x4_t {
        Self::sum32(a, b0, b1)
    }
    #[inline(always)]
    unsafe fn scaled16(acc: int32x4_t, a: int8x16_t, b: int8x16_t, scale: i16) -> int32x4_t {
        vmlaq_n_s32(acc, sdot(vdupq_n_s32(0), a, b), scale as i32)
    }
    #[inline(always)]
    unsafe fn scaled32_small(
        acc: int32x4_t,
        a: (int8x16_t, int8x16_t),
        b0: int8x16_t,
        b1: int8x16_t,
        scale: i16,
    ) -> int32x4_t {
        vmlaq_n_s32(acc, Self::sum32(a, b0, b1), scale as i32)
    }
}

/// Sixteen bytes with bit `j % 8` of byte `j / 8` of `bits` tested: 0xff where set, else 0.
#[inline(always)]
pub(super) unsafe fn bit_mask(bits: u16) -> uint8x16_t {
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vcombine_u8(vdup_n_u8(bits as u8), vdup_n_u8((bits >> 8) as u8));
    vtstq_u8(v, vld1q_u8(BIT.as_ptr()))
}

/// `v` negated in the bytes where `mask` is all ones (two's complement: `(v ^ m) − m`).
#[inline(always)]
pub(super) unsafe fn apply_signs(v: int8x16_t, mask: uint8x16_t) -> int8x16_t {
    let m = vreinterpretq_s8_u8(mask);
    vsubq_s8(veorq_s8(v, m), m)
}

/// The ksigns table as byte masks: entry i has byte j = 0xff where bit j of `KSIGNS_IQ2XS[i]`
/// is set (7 stored bits plus the parity bit 7), 0 elsewhere.
static KMASK: [u64; 128] = kmask();

const fn kmask() -> [u64; 128] {
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        let parity = (i as u32).count_ones() & 1;
        let k = i as u32 | (parity << 7);
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            if (k >> j) & 1 != 0 {
                v |= 0xff << (8 * j);
            }
            j += 1;
        }
        t[i] = v;
        i += 1;
    }
    t
}

/// Sign masks of 16 elements from two 7-bit ksigns indices (8 elements each).
#[inline(always)]
pub(super) unsafe fn ksigns_x2(lo: u32, hi: u32) -> uint8x16_t {
    vcombine_u8(
        vcreate_u8(KMASK[(lo & 127) as usize]),
        vcreate_u8(KMASK[(hi & 127) as usize]),
    )
}

/// Two 8-byte grid entries (little-endian u64s) as one vector.
#[inline(always)]
pub(super) unsafe fn pair(lo: u64, hi: u64) -> uint8x16_t {
    vcombine_u8(vcreate_u8(lo), vcreate_u8(hi))
}

/// Σ of the four lanes of the two accumulators.
#[inline(always)]
pub(super) unsafe fn hsum2(a: float32x4_t, b: float32x4_t) -> f32 {
    vaddvq_f32(vaddq_f32(a, b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ksigns_masks_follow_the_table() {
        for (i, &m) in super::KMASK.iter().enumerate() {
            let k = crate::quant::grids::KSIGNS_IQ2XS[i];
            for j in 0..8 {
                let set = (m >> (8 * j)) & 0xff == 0xff;
                assert_eq!(set, (k >> j) & 1 != 0, "entry {i} bit {j}");
            }
        }
    }
}
