//! Reader for the quant golden files written by `tests/gen/quant_golden.py`.
//!
//! Layout (little-endian): `b"SLQG"`, then u32 version (1), ggml type id, block count, block
//! bytes, block elements; a 16-byte NUL-padded name of the reference that produced the values;
//! the raw blocks; the expected values as f32.

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
