//! The ggml tensor types, as data.
//!
//! [`TYPES`] is the single table of every type id that can appear in a GGUF file: its name,
//! block size in elements and in bytes, and the row dequantizer of its family. Each family of
//! formats lives in one file (`float`, `legacy`, `kquants`, `iquants`, `ternary`, `fp4`), and the
//! codebooks they share live in `grids`. Nothing else in sluice matches over all types: code
//! that needs a per-type property asks this table.
//!
//! Ids that llama.cpp removed are known (so a file using them gets a precise error), and ids
//! newer than this table load as metadata and fail only when their data is used.

#![forbid(unsafe_code)]

pub(crate) mod bytes;
pub(crate) mod float;
pub(crate) mod fp4;
pub mod grids;
pub(crate) mod iquants;
pub(crate) mod kquants;
pub(crate) mod legacy;
pub(crate) mod ternary;

use crate::{Error, Result};
use std::fmt;

/// Dequantizes whole blocks: `blocks.len()` is a multiple of the block size in bytes and
/// `out.len()` is the matching number of elements.
pub type DequantFn = fn(blocks: &[u8], out: &mut [f32]);

/// A ggml type id as stored in GGUF tensor infos.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgmlType(pub u32);

/// Static description of one ggml type.
#[derive(Debug)]
pub struct TypeInfo {
    pub ty: GgmlType,
    /// Upper-case name as llama.cpp prints it (`Q4_K`, `IQ2_XXS`, `F32`, ...).
    pub name: &'static str,
    /// Elements per block (1 for plain arrays).
    pub block_elems: u32,
    /// Bytes per block.
    pub block_bytes: u32,
    /// The type was removed from ggml; files using it are rejected.
    pub removed: bool,
    /// Row dequantizer, `None` for types whose data sluice cannot decode.
    pub dequant: Option<DequantFn>,
}

macro_rules! types {
    ($( $konst:ident = $id:literal, $name:literal, $elems:literal, $bytes:literal, $dequant:expr; )*) => {
        impl GgmlType {
            $( pub const $konst: GgmlType = GgmlType($id); )*
        }
        /// Every ggml type id sluice knows, in id order.
        pub static TYPES: &[TypeInfo] = &[
            $( TypeInfo {
                ty: GgmlType($id),
                name: $name,
                block_elems: $elems,
                block_bytes: $bytes,
                removed: $bytes == 0,
                dequant: $dequant,
            }, )*
        ];
    };
}

// id, name, block elements, block bytes (0 = removed from ggml), dequantizer.
types! {
    F32 = 0, "F32", 1, 4, Some(float::dequant_f32);
    F16 = 1, "F16", 1, 2, Some(float::dequant_f16);
    Q4_0 = 2, "Q4_0", 32, 18, Some(legacy::dequant_q4_0);
    Q4_1 = 3, "Q4_1", 32, 20, Some(legacy::dequant_q4_1);
    Q4_2 = 4, "Q4_2", 32, 0, None;
    Q4_3 = 5, "Q4_3", 32, 0, None;
    Q5_0 = 6, "Q5_0", 32, 22, Some(legacy::dequant_q5_0);
    Q5_1 = 7, "Q5_1", 32, 24, Some(legacy::dequant_q5_1);
    Q8_0 = 8, "Q8_0", 32, 34, Some(legacy::dequant_q8_0);
    Q8_1 = 9, "Q8_1", 32, 36, Some(legacy::dequant_q8_1);
    Q2_K = 10, "Q2_K", 256, 84, Some(kquants::dequant_q2_k);
    Q3_K = 11, "Q3_K", 256, 110, Some(kquants::dequant_q3_k);
    Q4_K = 12, "Q4_K", 256, 144, Some(kquants::dequant_q4_k);
    Q5_K = 13, "Q5_K", 256, 176, Some(kquants::dequant_q5_k);
    Q6_K = 14, "Q6_K", 256, 210, Some(kquants::dequant_q6_k);
    Q8_K = 15, "Q8_K", 256, 292, Some(kquants::dequant_q8_k);
    IQ2_XXS = 16, "IQ2_XXS", 256, 66, Some(iquants::dequant_iq2_xxs);
    IQ2_XS = 17, "IQ2_XS", 256, 74, Some(iquants::dequant_iq2_xs);
    IQ3_XXS = 18, "IQ3_XXS", 256, 98, Some(iquants::dequant_iq3_xxs);
    IQ1_S = 19, "IQ1_S", 256, 50, Some(iquants::dequant_iq1_s);
    IQ4_NL = 20, "IQ4_NL", 32, 18, Some(iquants::dequant_iq4_nl);
    IQ3_S = 21, "IQ3_S", 256, 110, Some(iquants::dequant_iq3_s);
    IQ2_S = 22, "IQ2_S", 256, 82, Some(iquants::dequant_iq2_s);
    IQ4_XS = 23, "IQ4_XS", 256, 136, Some(iquants::dequant_iq4_xs);
    I8 = 24, "I8", 1, 1, Some(float::dequant_i8);
    I16 = 25, "I16", 1, 2, Some(float::dequant_i16);
    I32 = 26, "I32", 1, 4, Some(float::dequant_i32);
    I64 = 27, "I64", 1, 8, Some(float::dequant_i64);
    F64 = 28, "F64", 1, 8, Some(float::dequant_f64);
    IQ1_M = 29, "IQ1_M", 256, 56, Some(iquants::dequant_iq1_m);
    BF16 = 30, "BF16", 1, 2, Some(float::dequant_bf16);
    Q4_0_4_4 = 31, "Q4_0_4_4", 32, 0, None;
    Q4_0_4_8 = 32, "Q4_0_4_8", 32, 0, None;
    Q4_0_8_8 = 33, "Q4_0_8_8", 32, 0, None;
    TQ1_0 = 34, "TQ1_0", 256, 54, Some(ternary::dequant_tq1_0);
    TQ2_0 = 35, "TQ2_0", 256, 66, Some(ternary::dequant_tq2_0);
    IQ4_NL_4_4 = 36, "IQ4_NL_4_4", 32, 0, None;
    IQ4_NL_4_8 = 37, "IQ4_NL_4_8", 32, 0, None;
    IQ4_NL_8_8 = 38, "IQ4_NL_8_8", 32, 0, None;
    MXFP4 = 39, "MXFP4", 32, 17, Some(fp4::dequant_mxfp4);
    NVFP4 = 40, "NVFP4", 64, 36, Some(fp4::dequant_nvfp4);
    Q1_0 = 41, "Q1_0", 128, 18, Some(ternary::dequant_q1_0);
    Q2_0 = 42, "Q2_0", 64, 18, Some(ternary::dequant_q2_0);
}

impl GgmlType {
    /// The table row for this id, if sluice knows it.
    pub fn info(self) -> Option<&'static TypeInfo> {
        TYPES.get(self.0 as usize).filter(|t| t.ty == self)
    }

    /// Looks a type up by its name, case-insensitively (`q4_k`, `IQ2_XXS`).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| !t.removed && t.name.eq_ignore_ascii_case(name))
            .map(|t| t.ty)
    }

    pub fn name(self) -> String {
        match self.info() {
            Some(t) => t.name.to_string(),
            None => format!("type#{}", self.0),
        }
    }

    /// Elements per block, or `None` for ids this table does not know.
    pub fn block_elems(self) -> Option<u64> {
        self.info()
            .filter(|t| !t.removed)
            .map(|t| t.block_elems as u64)
    }

    /// Bytes needed for a row of `n` elements, or `None` when the type is unknown or `n` is
    /// not a whole number of blocks.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let t = self.info().filter(|t| !t.removed)?;
        if !n.is_multiple_of(t.block_elems as u64) {
            return None;
        }
        (n / t.block_elems as u64).checked_mul(t.block_bytes as u64)
    }

    /// Bits per weight (block bytes · 8 / block elements).
    pub fn bits_per_weight(self) -> Option<f64> {
        let t = self.info().filter(|t| !t.removed)?;
        Some(t.block_bytes as f64 * 8.0 / t.block_elems as f64)
    }

    /// Dequantizes `n` elements (whole blocks) from `bytes` into `out`.
    pub fn dequantize(self, bytes: &[u8], out: &mut [f32]) -> Result<()> {
        let t = self
            .info()
            .filter(|t| !t.removed)
            .ok_or_else(|| Error::Unsupported(format!("ggml type {} is not known", self.name())))?;
        let f = t.dequant.ok_or_else(|| {
            Error::Unsupported(format!(
                "decoding data of type {} is not implemented",
                t.name
            ))
        })?;
        let n = out.len() as u64;
        match self.row_bytes(n) {
            Some(b) if b == bytes.len() as u64 => {
                f(bytes, out);
                Ok(())
            }
            _ => Err(Error::Invalid(format!(
                "{}: {} bytes do not hold {} elements",
                t.name,
                bytes.len(),
                n
            ))),
        }
    }
}

impl fmt::Debug for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_id() {
        for (i, t) in TYPES.iter().enumerate() {
            assert_eq!(t.ty.0 as usize, i, "{} out of place", t.name);
        }
    }

    #[test]
    fn row_bytes_follow_blocks() {
        assert_eq!(GgmlType::Q4_K.row_bytes(7168), Some(28 * 144));
        assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
        assert_eq!(GgmlType::Q4_2.row_bytes(32), None);
        assert_eq!(GgmlType(99).row_bytes(32), None);
        assert_eq!(GgmlType::from_name("iq2_xxs"), Some(GgmlType::IQ2_XXS));
    }

    /// Block sizes re-derived from the field layouts (the same sums ggml asserts on its
    /// block structs), so a typo in the table cannot go unnoticed.
    #[test]
    fn block_bytes_match_field_layouts() {
        const QK_K: u32 = 256;
        let half = 2;
        let expected = [
            (GgmlType::Q4_0, half + 32 / 2),
            (GgmlType::Q4_1, 2 * half + 32 / 2),
            (GgmlType::Q5_0, half + 4 + 32 / 2),
            (GgmlType::Q5_1, 2 * half + 4 + 32 / 2),
            (GgmlType::Q8_0, half + 32),
            (GgmlType::Q8_1, 2 * half + 32),
            (GgmlType::Q2_K, 2 * half + QK_K / 16 + QK_K / 4),
            (GgmlType::Q3_K, half + QK_K / 4 + QK_K / 8 + 12),
            (GgmlType::Q4_K, 2 * half + 12 + QK_K / 2),
            (GgmlType::Q5_K, 2 * half + 12 + QK_K / 2 + QK_K / 8),
            (GgmlType::Q6_K, half + QK_K / 16 + 3 * QK_K / 4),
            (GgmlType::Q8_K, 4 + QK_K + QK_K / 16 * 2),
            (GgmlType::IQ2_XXS, half + QK_K / 8 * 2),
            (GgmlType::IQ2_XS, half + QK_K / 8 * 2 + QK_K / 32),
            (GgmlType::IQ2_S, half + QK_K / 4 + QK_K / 16),
            (GgmlType::IQ3_XXS, half + 3 * (QK_K / 8)),
            (GgmlType::IQ3_S, half + 13 * (QK_K / 32) + QK_K / 64),
            (GgmlType::IQ1_S, half + QK_K / 8 + QK_K / 16),
            (GgmlType::IQ1_M, QK_K / 8 + QK_K / 16 + QK_K / 32),
            (GgmlType::IQ4_NL, half + 32 / 2),
            (GgmlType::IQ4_XS, half + 2 + QK_K / 64 + QK_K / 2),
            (
                GgmlType::TQ1_0,
                half + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5,
            ),
            (GgmlType::TQ2_0, half + QK_K / 4),
            (GgmlType::MXFP4, 1 + 32 / 2),
            (GgmlType::NVFP4, 64 / 16 + 64 / 2),
            (GgmlType::Q1_0, half + 128 / 8),
            (GgmlType::Q2_0, half + 64 / 4),
        ];
        for (ty, bytes) in expected {
            let info = ty.info().expect("known type");
            assert_eq!(info.block_bytes, bytes, "{ty}");
        }
    }

    /// Every decodable type writes every output element, for several blocks.
    #[test]
    fn dequantizers_cover_whole_blocks() {
        for t in TYPES.iter().filter(|t| !t.removed) {
            assert!(t.dequant.is_some(), "{} has no dequantizer", t.name);
            let blocks = 3usize;
            let bytes = vec![0u8; blocks * t.block_bytes as usize];
            let mut out = vec![f32::NAN; blocks * t.block_elems as usize];
            t.ty.dequantize(&bytes, &mut out).expect("sizes match");
            // All-zero bytes decode to finite values in every format (TQ1_0 zero trits are -1,
            // Q1_0 zero bits are -d), so a NaN left over means an element was skipped.
            assert!(
                out.iter().all(|v| v.is_finite()),
                "{} left elements unset",
                t.name
            );
        }
    }

    /// Spot checks of the expanded grids against ggml-common.h's integers (every entry is
    /// also decoded by the golden tests of sluice-tests).
    #[test]
    fn grids_expand_to_ggml_values() {
        let le8 = |v: u64| v.to_le_bytes();
        assert_eq!(grids::IQ2XXS_GRID[1], le8(0x080808080808082b));
        assert_eq!(grids::IQ2XS_GRID[511], le8(0x2b2b2b2b2b2b2b2b));
        assert_eq!(grids::IQ2S_GRID[1023], le8(0x2b2b2b2b2b2b2b2b));
        assert_eq!(grids::IQ3XXS_GRID[5], 0x04040c3eu32.to_le_bytes());
        assert_eq!(grids::IQ3S_GRID[511], 0x0f0f0101u32.to_le_bytes());
        assert_eq!(grids::IQ1S_GRID[1], [1, -1, -1, -1, -1, -1, -1, -1]);
        assert_eq!(grids::IQ1S_GRID[2047], [1; 8]);
        assert_eq!(grids::KSIGNS_IQ2XS[1..4], [129, 130, 3]);
    }

    #[test]
    fn dequantize_rejects_mismatched_lengths() {
        let mut out = [0f32; 32];
        assert!(GgmlType::Q4_0.dequantize(&[0u8; 17], &mut out).is_err());
        assert!(GgmlType::Q4_2.dequantize(&[0u8; 18], &mut out).is_err());
        assert!(GgmlType(99).dequantize(&[0u8; 18], &mut out).is_err());
    }
}
