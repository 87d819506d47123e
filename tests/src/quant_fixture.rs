//! Readers for the quant golden files written by `tests/gen/quant_golden.py`.
//!
//! Dequantization (`quant/<type>.bin`, [`QuantFixture`]), little-endian: `b"SLQG"`, then u32
//! version (1), ggml type id, block count, block bytes, block elements; a 16-byte NUL-padded name
//! of the reference that produced the values; the raw blocks; the expected values as f32.
//!
//! CPU kernels (`quant/kernels/`): `x.bin` (`SLQX`: version, n, rows; f32 rows),
//! `from_float_<type>.bin` (`SLQF`: version, type, n, rows; row bytes), `vec_dot_<type>.bin`
//! (`SLQD`: version, weight type, activation type, n, rows; weight rows, then one f32 per row).

use std::path::Path;

/// One fixture: blocks of one type and the values a reference decodes them to.
pub struct QuantFixture {
    pub type_id: u32,
    pub n_blocks: usize,
    pub block_bytes: usize,
    pub block_elems: usize,
    /// Which implementation produced `expected` (`gguf-py`, `ggml-c`, ...).
    pub reference: String,
    pub blocks: Vec<u8>,
    pub expected: Vec<f32>,
}

const HEADER: usize = 4 + 5 * 4 + 16;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl QuantFixture {
    /// Reads and validates a fixture file; a malformed file is an error naming the file.
    pub fn read(path: &Path) -> Result<QuantFixture, String> {
        let name = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
        if bytes.len() < HEADER || &bytes[0..4] != b"SLQG" {
            return Err(format!("{name}: not a quant fixture"));
        }
        if u32_at(&bytes, 4) != 1 {
            return Err(format!("{name}: unknown version {}", u32_at(&bytes, 4)));
        }
        let type_id = u32_at(&bytes, 8);
        let n_blocks = u32_at(&bytes, 12) as usize;
        let block_bytes = u32_at(&bytes, 16) as usize;
        let block_elems = u32_at(&bytes, 20) as usize;
        let reference = String::from_utf8_lossy(&bytes[24..40])
            .trim_end_matches('\0')
            .to_string();
        let data_len = n_blocks * block_bytes;
        let values_len = n_blocks * block_elems * 4;
        if bytes.len() != HEADER + data_len + values_len {
            return Err(format!(
                "{name}: size {} does not match its header",
                bytes.len()
            ));
        }
        let blocks = bytes[HEADER..HEADER + data_len].to_vec();
        let expected = bytes[HEADER + data_len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(QuantFixture {
            type_id,
            n_blocks,
            block_bytes,
            block_elems,
            reference,
            blocks,
            expected,
        })
    }
}

/// Reads `SLQ?` fixtures of the CPU kernels: a magic, then little-endian u32 header words.
fn read_words(path: &Path, magic: &[u8; 4], words: usize) -> Result<(Vec<u32>, Vec<u8>), String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let header = 4 + 4 * words;
    if bytes.len() < header || &bytes[0..4] != magic {
        return Err(format!(
            "{name}: not a {} fixture",
            String::from_utf8_lossy(magic)
        ));
    }
    let w: Vec<u32> = (0..words).map(|i| u32_at(&bytes, 4 + 4 * i)).collect();
    if w[0] != 1 {
        return Err(format!("{name}: unknown version {}", w[0]));
    }
    Ok((w, bytes[header..].to_vec()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `x.bin`: the activation rows every kernel fixture refers to.
pub struct ActivationRows {
    pub n: usize,
    pub rows: Vec<Vec<f32>>,
}

impl ActivationRows {
    pub fn read(path: &Path) -> Result<ActivationRows, String> {
        let (w, data) = read_words(path, b"SLQX", 3)?;
        let (n, rows) = (w[1] as usize, w[2] as usize);
        if data.len() != n * rows * 4 {
            return Err(format!("{}: wrong size", path.display()));
        }
        let rows = data.chunks_exact(n * 4).map(f32s).collect();
        Ok(ActivationRows { n, rows })
    }
}

/// `from_float_<type>.bin`: ggml-cpu's conversion of each activation row to one type.
pub struct FromFloat {
    pub type_id: u32,
    pub n: usize,
    pub rows: Vec<Vec<u8>>,
}

impl FromFloat {
    pub fn read(path: &Path, row_bytes: usize) -> Result<FromFloat, String> {
        let (w, data) = read_words(path, b"SLQF", 4)?;
        let (n, rows) = (w[2] as usize, w[3] as usize);
        if data.len() != rows * row_bytes {
            return Err(format!("{}: wrong size", path.display()));
        }
        let rows = data.chunks_exact(row_bytes).map(<[u8]>::to_vec).collect();
        Ok(FromFloat {
            type_id: w[1],
            n,
            rows,
        })
    }
}

/// `vec_dot_<type>.bin`: weight rows and ggml-cpu's dot of each with the activation row of the
/// same index (converted to `act_id` by ggml).
pub struct VecDot {
    pub weight_id: u32,
    pub act_id: u32,
    pub n: usize,
    pub weights: Vec<Vec<u8>>,
    pub dots: Vec<f32>,
}

impl VecDot {
    pub fn read(path: &Path, row_bytes: usize) -> Result<VecDot, String> {
        let (w, data) = read_words(path, b"SLQD", 5)?;
        let (n, rows) = (w[3] as usize, w[4] as usize);
        if data.len() != rows * (row_bytes + 4) {
            return Err(format!("{}: wrong size", path.display()));
        }
        let (weights, dots) = data.split_at(rows * row_bytes);
        Ok(VecDot {
            weight_id: w[1],
            act_id: w[2],
            n,
            weights: weights
                .chunks_exact(row_bytes)
                .map(<[u8]>::to_vec)
                .collect(),
            dots: f32s(dots),
        })
    }
}
