//! How each ggml type lives on the GPU: one table row per type, as data.
//!
//! WGSL reads storage as `array<u32>`, but many GGUF blocks are not a multiple of 4 bytes long
//! and start with a 2-byte `f16` scale (Q4_0 is 18 bytes). At upload every block is therefore
//! *rotated*: its first `rotate` bytes (the scales) move to its end, so the bulk of quant bytes
//! starts word-aligned, and the block is zero-padded to whole words. One rule, one number per
//! type; each type's WGSL snippet (`wgsl/quant/*.wgsl`) documents the resulting byte offsets and
//! implements the one interface every kernel is composed with:
//!
//! ```text
//! fn dequant4(b: u32, j: u32) -> vec4<f32>   // elements j..j+4 of the block at word b (4 | j)
//! ```
//!
//! Plain arrays (F32, F16, BF16) use GPU blocks of 4 elements and are not rewritten. Lookup
//! grids of the i-quants come from `sluice_core::quant::grids` (the one source of truth) and
//! are uploaded once as a buffer; see [`grid_table`].

use sluice_core::quant::{grids, GgmlType};

/// One ggml type on the GPU.
#[derive(Debug)]
pub struct GpuFormat {
    pub ty: GgmlType,
    /// Leading bytes of each GGUF block moved to the block's end.
    pub rotate: u32,
    /// The type's `dequant4` implementation.
    pub source: &'static str,
    /// Helper snippets the source calls.
    pub helpers: &'static [&'static str],
    /// The source reads the lookup-grid buffer.
    pub uses_grids: bool,
    /// How the KV cache writes rows of this type (`fn store_block`), if it can be a cache type.
    pub store: Option<&'static str>,
}

/// Activation formats whose rounding also writes a per-block correction after the rounded
/// values (see `wgsl/act/q8_1.wgsl`).
pub fn act_has_correction(act: GgmlType) -> bool {
    act == GgmlType::Q8_1
}

const K_SCALE_MIN: &str = include_str!("wgsl/quant/k_scale_min.wgsl");

macro_rules! formats {
    ($( $ty:ident $file:literal: rotate $rot:literal, grids $grids:literal, helpers [$($h:expr),*], store $store:expr; )*) => {
        /// Every type the kernels can read.
        pub static FORMATS: &[GpuFormat] = &[
            $( GpuFormat {
                ty: GgmlType::$ty,
                rotate: $rot,
                source: include_str!(concat!("wgsl/quant/", $file, ".wgsl")),
                helpers: &[$($h),*],
                uses_grids: $grids,
                store: $store,
            }, )*
        ];
    };
}

// type, its snippet under wgsl/quant, bytes rotated, grid use, helper snippets, cache writer.
formats! {
    F32 "f32": rotate 0, grids false, helpers [], store Some(include_str!("wgsl/store/f32.wgsl"));
    F16 "f16": rotate 0, grids false, helpers [], store Some(include_str!("wgsl/store/f16.wgsl"));
    BF16 "bf16": rotate 0, grids false, helpers [], store Some(include_str!("wgsl/store/bf16.wgsl"));
    Q4_0 "q4_0": rotate 2, grids false, helpers [], store Some(include_str!("wgsl/store/q4_0.wgsl"));
    Q4_1 "q4_1": rotate 4, grids false, helpers [], store Some(include_str!("wgsl/store/q4_1.wgsl"));
    Q5_0 "q5_0": rotate 2, grids false, helpers [], store Some(include_str!("wgsl/store/q5_0.wgsl"));
    Q5_1 "q5_1": rotate 4, grids false, helpers [], store Some(include_str!("wgsl/store/q5_1.wgsl"));
    Q8_0 "q8_0": rotate 2, grids false, helpers [], store Some(include_str!("wgsl/store/q8_0.wgsl"));
    Q2_K "q2_k": rotate 0, grids false, helpers [], store None;
    Q3_K "q3_k": rotate 0, grids false, helpers [], store None;
    Q4_K "q4_k": rotate 0, grids false, helpers [K_SCALE_MIN], store None;
    Q5_K "q5_k": rotate 0, grids false, helpers [K_SCALE_MIN], store None;
    Q6_K "q6_k": rotate 0, grids false, helpers [], store None;
    IQ2_XXS "iq2_xxs": rotate 2, grids true, helpers [], store None;
    IQ2_XS "iq2_xs": rotate 2, grids true, helpers [], store None;
    IQ2_S "iq2_s": rotate 2, grids true, helpers [], store None;
    IQ3_XXS "iq3_xxs": rotate 2, grids true, helpers [], store None;
    IQ3_S "iq3_s": rotate 2, grids true, helpers [], store None;
    IQ1_S "iq1_s": rotate 2, grids true, helpers [], store None;
    IQ1_M "iq1_m": rotate 0, grids true, helpers [], store None;
    IQ4_NL "iq4_nl": rotate 2, grids true, helpers [], store Some(include_str!("wgsl/store/iq4_nl.wgsl"));
    IQ4_XS "iq4_xs": rotate 0, grids true, helpers [], store None;
    TQ1_0 "tq1_0": rotate 0, grids false, helpers [], store None;
    TQ2_0 "tq2_0": rotate 0, grids false, helpers [], store None;
    MXFP4 "mxfp4": rotate 1, grids true, helpers [], store None;
    NVFP4 "nvfp4": rotate 0, grids true, helpers [], store None;
    Q1_0 "q1_0": rotate 2, grids false, helpers [], store None;
    Q2_0 "q2_0": rotate 2, grids false, helpers [], store None;
}

impl GpuFormat {
    /// The row of `ty`, if the GPU kernels can read it.
    pub fn of(ty: GgmlType) -> Option<&'static GpuFormat> {
        FORMATS.iter().find(|f| f.ty == ty)
    }

    /// ggml elements and bytes of one ggml block.
    fn ggml_block(&self) -> (u32, u32) {
        let info = self.ty.info().expect("every table row is a known type");
        (info.block_elems, info.block_bytes)
    }

    /// Elements per GPU block: the ggml block, or 4 elements for plain arrays.
    pub fn block_elems(&self) -> u32 {
        let (elems, _) = self.ggml_block();
        if elems == 1 {
            4
        } else {
            elems
        }
    }

    /// GGUF bytes that make one GPU block.
    pub fn src_block_bytes(&self) -> u32 {
        let (elems, bytes) = self.ggml_block();
        bytes * (self.block_elems() / elems)
    }

    /// Words of one GPU block after rotation and padding.
    pub fn block_words(&self) -> u32 {
        self.src_block_bytes().div_ceil(4)
    }

    /// The snippet defines `block_min` (affine formats: Q4_1, Q5_1).
    pub fn has_min(&self) -> bool {
        self.source.contains("fn block_min(")
    }

    /// GPU words of a row of `cols` elements, or `None` when `cols` is not a whole number of
    /// GPU blocks.
    pub fn row_words(&self, cols: usize) -> Option<usize> {
        let be = self.block_elems() as usize;
        cols.is_multiple_of(be)
            .then(|| cols / be * self.block_words() as usize)
    }

    /// Rewrites whole GGUF blocks (`src`, a multiple of [`Self::src_block_bytes`]) into GPU
    /// words (`dst`, [`Self::block_words`] per block).
    pub fn repack(&self, src: &[u8], dst: &mut [u32]) {
        let sb = self.src_block_bytes() as usize;
        let bw = self.block_words() as usize;
        let rot = self.rotate as usize;
        let mut block = vec![0u8; bw * 4];
        for (s, d) in src.chunks_exact(sb).zip(dst.chunks_exact_mut(bw)) {
            block[..sb - rot].copy_from_slice(&s[rot..]);
            block[sb - rot..sb].copy_from_slice(&s[..rot]);
            for (w, b) in d.iter_mut().zip(block.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
}

/// How activations are rounded before a product with weights whose CPU dot product uses an
/// activation format other than F32 (see `sluice_core::cpu::kernels`): `(format, snippet)`.
pub static ACT_FORMATS: &[(GgmlType, &str)] = &[
    (GgmlType::F16, include_str!("wgsl/act/f16.wgsl")),
    (GgmlType::BF16, include_str!("wgsl/act/bf16.wgsl")),
    (GgmlType::Q8_0, include_str!("wgsl/act/q8_0.wgsl")),
    // Q8_1: Q8_0's codes and scale, plus the block-sum correction (see the snippet).
    (GgmlType::Q8_1, include_str!("wgsl/act/q8_1.wgsl")),
    (GgmlType::Q8_K, include_str!("wgsl/act/q8_k.wgsl")),
];

/// The activation format the CPU backend multiplies weights of `weight` with, when it is one
/// the GPU rounds to (`None` for F32 and types the CPU has no kernel for).
pub fn act_format(weight: GgmlType) -> Option<GgmlType> {
    let act = sluice_core::cpu::kernels::dot_kernel(weight)?.act;
    ACT_FORMATS.iter().any(|(t, _)| *t == act).then_some(act)
}

/// The lookup tables as one word buffer, and where each starts (in words).
pub struct GridTable {
    pub words: Vec<u32>,
    /// `(WGSL constant name, word offset)`.
    pub offsets: Vec<(&'static str, u32)>,
}

/// Packs core's grids into words (4 table bytes per word, little-endian).
pub fn grid_table() -> GridTable {
    let mut words = Vec::new();
    let mut offsets = Vec::new();
    let mut add = |name: &'static str, bytes: Vec<u8>| {
        offsets.push((name, words.len() as u32));
        for c in bytes.chunks(4) {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            words.push(u32::from_le_bytes(w));
        }
    };
    let signed = |v: &[i8]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
    add("GRID_KSIGNS", grids::KSIGNS_IQ2XS.to_vec());
    add("GRID_IQ4NL", signed(&grids::KVALUES_IQ4NL));
    add("GRID_FP4", signed(&grids::KVALUES_FP4));
    add("GRID_IQ2XXS", grids::IQ2XXS_GRID.concat());
    add("GRID_IQ2XS", grids::IQ2XS_GRID.concat());
    add("GRID_IQ2S", grids::IQ2S_GRID.concat());
    add("GRID_IQ3XXS", grids::IQ3XXS_GRID.concat());
    add("GRID_IQ3S", grids::IQ3S_GRID.concat());
    add(
        "GRID_IQ1S",
        grids::IQ1S_GRID.iter().flat_map(|e| signed(e)).collect(),
    );
    GridTable { words, offsets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_fits_whole_words_and_rotation_is_within_the_block() {
        for f in FORMATS {
            assert!(f.rotate < f.src_block_bytes(), "{}", f.ty);
            assert!(f.block_words() * 4 >= f.src_block_bytes(), "{}", f.ty);
            assert_eq!(f.block_elems() % 4, 0, "{}", f.ty);
        }
    }

    #[test]
    fn repack_moves_the_head_to_the_end_and_pads() {
        let f = GpuFormat::of(GgmlType::Q4_0).unwrap();
        let src: Vec<u8> = (0..36).collect(); // two blocks
        let mut dst = vec![0u32; 10];
        f.repack(&src, &mut dst);
        // Block 0: bytes 2..18 then 0, 1 then two zero bytes.
        assert_eq!(dst[0], u32::from_le_bytes([2, 3, 4, 5]));
        assert_eq!(dst[4], u32::from_le_bytes([0, 1, 0, 0]));
        assert_eq!(dst[5], u32::from_le_bytes([20, 21, 22, 23]));
    }

    #[test]
    fn grid_table_holds_every_grid() {
        let g = grid_table();
        let at = |n: &str| g.offsets.iter().find(|(k, _)| *k == n).unwrap().1 as usize;
        assert_eq!(
            g.words[at("GRID_IQ2XXS") + 2 * 5],
            u32::from_le_bytes(grids::IQ2XXS_GRID[5][..4].try_into().unwrap())
        );
        assert_eq!(
            g.words[at("GRID_IQ1S") + 2 * 2047 + 1] >> 24,
            grids::IQ1S_GRID[2047][7] as u8 as u32
        );
    }
}
