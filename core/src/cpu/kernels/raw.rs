//! Unaligned little-endian reads through raw pointers and the exact f16 → f32 widening in
//! integer operations: the pieces every per-ISA kernel module (x86, NEON, simd128) shares.
//!
//! The readers are `unsafe`: callers guarantee that each pointer is valid for the bytes read.

#![allow(dead_code)]

#[inline(always)]
pub(super) unsafe fn rd_u16(p: *const u8) -> u16 {
    (p as *const u16).read_unaligned()
}

#[inline(always)]
pub(super) unsafe fn rd_u32(p: *const u8) -> u32 {
    (p as *const u32).read_unaligned()
}

#[inline(always)]
pub(super) unsafe fn rd_u64(p: *const u8) -> u64 {
    (p as *const u64).read_unaligned()
}

#[inline(always)]
pub(super) unsafe fn rd_f32(p: *const u8) -> f32 {
    f32::from_bits(rd_u32(p))
}

/// IEEE binary16 bits → f32 (exact), in general-purpose registers: normals move exponent and
/// mantissa into place with integer adds; subnormals are `m·2⁻²⁴` (exact, and no subnormal
/// float operand, which would cost a microcode assist on x86); infinities and NaNs keep an
/// all-ones exponent.
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let em = h & 0x7fff;
    let magnitude = if em < 0x0400 {
        em as f32 * f32::from_bits(0x3380_0000) // 2⁻²⁴
    } else if em < 0x7c00 {
        f32::from_bits((em << 13) + (112 << 23))
    } else {
        f32::from_bits((em << 13) | 0x7f80_0000)
    };
    f32::from_bits(magnitude.to_bits() | (h & 0x8000) << 16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_conversion_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got} vs {want}"
            );
        }
    }
}
