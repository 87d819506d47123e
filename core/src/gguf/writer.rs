//! Writing GGUF files: the header from metadata and tensor records, then the tensor data,
//! streamed from a caller-supplied [`TensorData`] so that splitting or merging a model never
//! holds more than one chunk of it in memory.
//!
//! The byte layout is the one ggml and gguf-py write, so that parsing a file they wrote and
//! writing it back reproduces it byte for byte:
//!
//! * magic, version, tensor count, key/value count, the pairs in order, the tensor records in
//!   order (with `n_dims` as stored, and offsets computed here: contiguous, each tensor padded
//!   to the alignment, as [`super::reader`] requires);
//! * zero padding up to the alignment (always, even with no tensors);
//! * each tensor's bytes followed by zero padding up to the alignment (the last one too).
//!
//! Booleans are written as the byte 0 or 1; a file that stored another non-zero byte for
//! `true` is the one input that does not round-trip exactly.

use super::reader::{alignment_of, pad, ALIGNMENT_KEY, MAGIC, MAX_DIMS, MAX_TENSOR_NAME};
use super::value::{Metadata, Value, ValueType};
use super::{Header, TensorInfo};
use crate::quant::GgmlType;
use crate::{Error, Result};
use std::collections::HashSet;
use std::io::Write;

/// The GGUF version written unless asked otherwise (ggml and gguf-py write 3).
pub const DEFAULT_VERSION: u32 = 3;

/// Supplies tensor bytes to [`GgufWriter::write_to`], one tensor at a time, in record order.
pub trait TensorData {
    /// Writes exactly `tensor.nbytes()` bytes of tensor `index` to `out`. Large tensors should
    /// be written in chunks so memory use stays bounded.
    fn write_tensor(
        &mut self,
        index: usize,
        tensor: &TensorInfo,
        out: &mut dyn Write,
    ) -> Result<()>;
}

impl<F> TensorData for F
where
    F: FnMut(usize, &TensorInfo, &mut dyn Write) -> Result<()>,
{
    fn write_tensor(
        &mut self,
        index: usize,
        tensor: &TensorInfo,
        out: &mut dyn Write,
    ) -> Result<()> {
        self(index, tensor, out)
    }
}

/// A GGUF file being assembled: metadata, then tensors added in the order they will appear.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
    /// Length of the data section so far (every tensor padded).
    data_len: u64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

impl GgufWriter {
    /// A writer for a file with this metadata (its `general.alignment`, if any, sets the
    /// alignment) and no tensors yet.
    pub fn new(metadata: Metadata) -> Result<Self> {
        let alignment =
            alignment_of(&metadata).map_err(|m| invalid(format!("{ALIGNMENT_KEY}: {m}")))?;
        for (key, value) in metadata.iter() {
            if key.is_empty() {
                return Err(invalid("a metadata key is empty"));
            }
            check_value(key, value)?;
        }
        Ok(GgufWriter {
            version: DEFAULT_VERSION,
            alignment,
            metadata,
            tensors: Vec::new(),
            names: HashSet::new(),
            data_len: 0,
        })
    }

    /// A writer that reproduces a parsed file: same version, metadata, records and shapes.
    pub fn from_header(header: &Header) -> Result<Self> {
        let mut w = GgufWriter::new(header.metadata.clone())?;
        w.set_version(header.version)?;
        for t in &header.tensors {
            w.add_tensor(&t.name, t.ty, &t.dims)?;
        }
        Ok(w)
    }

    /// Sets the GGUF version to write (2 and 3 have the same layout).
    pub fn set_version(&mut self, version: u32) -> Result<()> {
        if !matches!(version, 2 | 3) {
            return Err(invalid(format!(
                "cannot write GGUF version {version} (2 or 3)"
            )));
        }
        self.version = version;
        Ok(())
    }

    /// Appends a tensor record; its offset follows the previous tensor, padded. `dims` is in
    /// ggml `ne` order and is written as given (see [`canonical_dims`] for ggml's form).
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, dims: &[u64]) -> Result<&TensorInfo> {
        if name.len() > MAX_TENSOR_NAME {
            return Err(invalid(format!(
                "tensor name {name:?} is longer than {MAX_TENSOR_NAME} bytes"
            )));
        }
        if self.names.contains(name) {
            return Err(invalid(format!("duplicate tensor name {name}")));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(invalid(format!(
                "tensor {name} has {} dimensions (at most {MAX_DIMS})",
                dims.len()
            )));
        }
        if dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .is_none_or(|n| n > i64::MAX as u64)
        {
            return Err(invalid(format!("tensor {name}: element count overflows")));
        }
        let info = TensorInfo {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            offset: self.data_len,
            info_offset: 0,
        };
        let Some(t) = ty.info().filter(|t| !t.removed) else {
            return Err(invalid(format!(
                "tensor {name} has type {ty}, whose size this version of sluice does not know"
            )));
        };
        let nbytes = info.nbytes().ok_or_else(|| {
            invalid(format!(
                "tensor {name}: ne[0] = {} is not a multiple of the {} block size {}, or the \
                 size overflows",
                info.ne(0),
                t.name,
                t.block_elems
            ))
        })?;
        self.data_len = self
            .data_len
            .checked_add(nbytes)
            .and_then(|end| end.checked_next_multiple_of(self.alignment))
            .ok_or_else(|| invalid("the data section would exceed 2^64 bytes"))?;
        self.names.insert(info.name.clone());
        self.tensors.push(info);
        Ok(self.tensors.last().expect("just pushed"))
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensor records, with the offsets they will be written with.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Length of the data section (each tensor padded to the alignment).
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Everything before the data section, including the padding after the records.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, self.version);
        put_u64(&mut out, self.tensors.len() as u64);
        put_u64(&mut out, self.metadata.len() as u64);
        for (key, value) in self.metadata.iter() {
            put_str(&mut out, key);
            match value {
                Value::Array(elem, items) => {
                    put_u32(&mut out, ValueType::Array as u32);
                    put_array(&mut out, *elem, items);
                }
                v => {
                    put_u32(&mut out, v.value_type() as u32);
                    put_value(&mut out, v);
                }
            }
        }
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            put_u32(&mut out, t.dims.len() as u32);
            for &d in &t.dims {
                put_u64(&mut out, d);
            }
            put_u32(&mut out, t.ty.0);
            put_u64(&mut out, t.offset);
        }
        let padded = pad(out.len() as u64, self.alignment) as usize;
        out.resize(padded, 0);
        out
    }

    /// Total length of the file [`Self::write_to`] produces.
    pub fn file_len(&self) -> u64 {
        self.header_bytes().len() as u64 + self.data_len
    }

    /// Writes the whole file to `out` (named `out_name` in errors), pulling each tensor's bytes
    /// from `data`. Returns the number of bytes written.
    pub fn write_to(
        &self,
        out: &mut dyn Write,
        out_name: &str,
        data: &mut dyn TensorData,
    ) -> Result<u64> {
        let io = |e: std::io::Error| Error::io(out_name, format!("write failed: {e}"));
        let header = self.header_bytes();
        out.write_all(&header).map_err(io)?;
        let mut counted = CountingWriter { inner: out, n: 0 };
        for (i, t) in self.tensors.iter().enumerate() {
            let nbytes = t.nbytes().expect("add_tensor checked the size");
            let start = counted.n;
            if start != t.offset {
                return Err(invalid(format!(
                    "{out_name}: tensor {} would land at data offset {start}, not {}",
                    t.name, t.offset
                )));
            }
            data.write_tensor(i, t, &mut counted)?;
            let wrote = counted.n - start;
            if wrote != nbytes {
                return Err(invalid(format!(
                    "{out_name}: the data for tensor {} was {wrote} bytes, expected {nbytes}",
                    t.name
                )));
            }
            let padding = pad(nbytes, self.alignment) - nbytes;
            write_zeros(&mut counted, padding).map_err(io)?;
        }
        counted.inner.flush().map_err(io)?;
        Ok(header.len() as u64 + counted.n)
    }

    /// The whole file in memory (for tests and small files).
    pub fn to_vec(&self, data: &mut dyn TensorData) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out, "<memory>", data)?;
        Ok(out)
    }
}

/// The shape as ggml writes it: trailing dimensions of 1 dropped, at least one kept
/// (`ggml_n_dims`). llama.cpp's tools (gguf-split, quantize) write shapes this way.
pub fn canonical_dims(dims: &[u64]) -> Vec<u64> {
    let keep = dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    let mut out: Vec<u64> = dims.iter().copied().take(keep).collect();
    if out.is_empty() {
        out.push(1);
    }
    out
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_zeros(out: &mut dyn Write, mut n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 256] = [0; 256];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Checks that a value can be written: array elements all have the declared type.
fn check_value(key: &str, value: &Value) -> Result<()> {
    if let Value::Array(elem, items) = value {
        for (i, item) in items.iter().enumerate() {
            if item.value_type() != *elem {
                return Err(invalid(format!(
                    "metadata {key}: element {i} is {} in an array of {}",
                    item.value_type().name(),
                    elem.name()
                )));
            }
            check_value(key, item)?;
        }
    }
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// An array body: element type, count, elements (arrays nest the same way).
fn put_array(out: &mut Vec<u8>, elem: ValueType, items: &[Value]) {
    put_u32(out, elem as u32);
    put_u64(out, items.len() as u64);
    for item in items {
        put_value(out, item);
    }
}

/// A value without its type tag.
fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(elem, items) => put_array(out, *elem, items),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}
