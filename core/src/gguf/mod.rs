//! The GGUF container: parse (versions 2 and 3), write, and present split files as one model.
//!
//! Parsing works on a prefix of the file held in memory, so any [`crate::source::ByteSource`]
//! can feed it: a memory map hands over everything, a remote source fetches a first chunk and
//! more only if the header turns out longer ([`read_header`]).

pub mod model;
pub mod reader;
pub mod split;
pub mod value;
pub mod writer;

#[cfg(test)]
mod tests;

pub use model::{GgufModel, ModelTensor, SourceOpener};
pub use reader::{parse_header, Header, Parsed};
pub use value::{Metadata, Value, ValueType};
pub use writer::{canonical_dims, GgufWriter, TensorData};

use crate::quant::GgmlType;
use crate::source::ByteSource;
use crate::{Error, Result};

/// One tensor-info record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// Shape in ggml `ne` order (fastest-varying first), as many dims as stored.
    pub dims: Vec<u64>,
    /// Offset of the data relative to the file's data section.
    pub offset: u64,
    /// Where the record itself sits in the file (for error messages).
    pub info_offset: u64,
}

impl TensorInfo {
    /// `ne[i]`, 1 for dimensions beyond those stored.
    pub fn ne(&self, i: usize) -> u64 {
        self.dims.get(i).copied().unwrap_or(1)
    }

    /// Number of elements (`u64::MAX` if the shape overflows, which the reader refuses).
    pub fn n_elements(&self) -> u64 {
        if self.dims.contains(&0) {
            return 0;
        }
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Bytes of one row (`ne[0]` elements), `None` for unknown types.
    pub fn row_bytes(&self) -> Option<u64> {
        self.ty.row_bytes(self.ne(0))
    }

    /// Bytes of the whole tensor, `None` for unknown types or a size that overflows 64 bits.
    /// A tensor with a zero dimension has 0 bytes, however large the others are.
    pub fn nbytes(&self) -> Option<u64> {
        let row = self.row_bytes()?;
        if self.dims.contains(&0) {
            return Some(0);
        }
        self.dims
            .iter()
            .skip(1)
            .try_fold(row, |acc, &d| acc.checked_mul(d))
    }
}

/// Reads and parses the header of `source`, fetching more of it only as needed.
pub async fn read_header(source: &dyn ByteSource) -> Result<Header> {
    let len = source.len();
    if let Some(all) = source.as_slice() {
        return match parse_header(source.name(), all, len)? {
            Parsed::Done(h) => Ok(h),
            Parsed::NeedMore(_) => Err(Error::io(
                source.name(),
                "header parse wanted bytes past the end",
            )),
        };
    }
    let mut want = len.min(1 << 20);
    loop {
        let prefix = source.read_at(0, want as usize).await?;
        match parse_header(source.name(), &prefix, len)? {
            Parsed::Done(h) => return Ok(h),
            Parsed::NeedMore(n) if n > want && n <= len => want = n.max(want * 2).min(len),
            Parsed::NeedMore(n) => {
                return Err(Error::io(
                    source.name(),
                    format!("header parser asked for {n} bytes after reading {want} of {len}"),
                ))
            }
        }
    }
}
