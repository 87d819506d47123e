//! Parsing a GGUF header (versions 2 and 3) from a prefix of the file.
//!
//! The parser never trusts a count or a length: before allocating it checks that the bytes
//! the count implies can fit in the rest of the file, so a corrupt header fails with an error
//! naming the file, the offset and the field, and never allocates more than a small multiple
//! of the file size. When it is handed only a prefix of the file and runs off its end, it says
//! how many bytes it needs ([`Parsed::NeedMore`]) so a remote source can fetch more and try
//! again; a prefix never fails where the whole file would not.
//!
//! It accepts what llama.cpp's `gguf.cpp` accepts, with these deliberate differences:
//!
//! * **Newer tensor types load.** A type id this build does not know is kept as metadata
//!   (its size is unknown, [`TensorInfo::nbytes`] is `None`) and fails only when its data is
//!   used; llama.cpp refuses the file. Removed ids (Q4_2, the 4_4/4_8/8_8 repacks) are refused.
//! * **Nested arrays load** (up to 8 deep), as gguf-py reads and writes them; llama.cpp refuses.
//! * **Strings must be UTF-8** (keys, values, tensor names); llama.cpp does not check.
//! * The **offset rule** is llama.cpp's: tensor data is contiguous, in record order, each
//!   tensor padded to the alignment (`check_data_layout` says why we enforce it).
//! * Big-endian files are refused with a message saying so.

use super::value::{Metadata, Value, ValueType};
use super::TensorInfo;
use crate::quant::GgmlType;
use crate::{Error, Result};
use std::collections::HashSet;

/// The GGUF magic, "GGUF" as bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The key that sets the alignment of the data section.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// llama.cpp's longest tensor name (GGML_MAX_NAME − 1).
pub const MAX_TENSOR_NAME: usize = 63;
/// llama.cpp's bound on one string and on one array.
const MAX_STRING_BYTES: u64 = 1 << 30;
const MAX_ARRAY_ELEMS: u64 = 1 << 30;
/// Nested arrays deeper than this are refused (the format allows nesting; nobody uses it).
const MAX_ARRAY_DEPTH: u32 = 8;

/// Everything before the data section of one GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section (tensor offsets are relative to it).
    pub data_offset: u64,
}

/// Outcome of parsing a (possibly partial) header.
#[derive(Debug)]
pub enum Parsed {
    Done(Header),
    /// The prefix ended inside the header; at least this many bytes are needed.
    NeedMore(u64),
}

/// Reading ran out of bytes: either the prefix is too short or the file is truncated.
struct OutOfBytes {
    needed: u64,
}

enum Fail {
    Short(OutOfBytes),
    Bad(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Bad(e)
    }
}

type R<T> = std::result::Result<T, Fail>;

struct Cursor<'a> {
    file: &'a str,
    bytes: &'a [u8],
    file_len: u64,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, at: u64, field: &str, msg: impl Into<String>) -> Fail {
        Fail::Bad(Error::format(self.file, at, field, msg))
    }

    /// Bytes left in the whole file after the cursor.
    fn file_remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.pos as u64)
    }

    fn take(&mut self, n: u64, field: &str) -> R<&'a [u8]> {
        let at = self.pos as u64;
        if n > self.file_remaining() {
            return Err(self.bad(
                at,
                field,
                format!(
                    "needs {n} bytes but the file ends after {} more",
                    self.file_remaining()
                ),
            ));
        }
        let end = self.pos + n as usize;
        if end > self.bytes.len() {
            return Err(Fail::Short(OutOfBytes { needed: end as u64 }));
        }
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &str) -> R<[u8; N]> {
        let b = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, field: &str) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &str) -> R<i64> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &str) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn string(&mut self, field: &str) -> R<String> {
        let at = self.pos as u64;
        let len = self.u64(field)?;
        if len > MAX_STRING_BYTES {
            return Err(self.bad(at, field, format!("string length {len} exceeds 1 GiB")));
        }
        let raw = self.take(len, field)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| self.bad(at, field, "string is not valid UTF-8"))
    }

    /// A count of items of at least `min_item_bytes` each that must fit in the file.
    fn count(&mut self, field: &str, min_item_bytes: u64, limit: u64) -> R<u64> {
        let at = self.pos as u64;
        let n = self.i64(field)?;
        self.check_count(at, field, n, min_item_bytes, limit)
    }

    fn check_count(&self, at: u64, field: &str, n: i64, min_item: u64, limit: u64) -> R<u64> {
        if n < 0 {
            return Err(self.bad(at, field, format!("negative count {n}")));
        }
        let n = n as u64;
        if n > limit {
            return Err(self.bad(at, field, format!("count {n} exceeds the limit {limit}")));
        }
        if n.saturating_mul(min_item) > self.file_remaining() {
            return Err(self.bad(
                at,
                field,
                format!(
                    "count {n} cannot fit in the {} bytes left in the file",
                    self.file_remaining()
                ),
            ));
        }
        Ok(n)
    }

    fn value_type(&mut self, field: &str) -> R<ValueType> {
        let at = self.pos as u64;
        let id = self.u32(field)?;
        ValueType::from_id(id)
            .ok_or_else(|| self.bad(at, field, format!("unknown value type {id}")))
    }

    fn value(&mut self, ty: ValueType, field: &str, depth: u32) -> R<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(field)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(field)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(field)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(field)?)),
            ValueType::U32 => Value::U32(self.u32(field)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(field)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(field)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(field)?[0] != 0),
            ValueType::String => Value::String(self.string(field)?),
            ValueType::U64 => Value::U64(self.u64(field)?),
            ValueType::I64 => Value::I64(self.i64(field)?),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(field)?)),
            ValueType::Array => {
                let at = self.pos as u64;
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.bad(at, field, "arrays nested too deeply"));
                }
                let elem = self.value_type(field)?;
                let len_at = self.pos as u64;
                let n = self.u64(field)?;
                // Smallest encoding of one element: fixed size, or a length prefix.
                let min_item = match elem {
                    ValueType::String => 8,
                    ValueType::Array => 12,
                    t => t.fixed_size().unwrap_or(1) as u64,
                };
                let n = self.check_count(
                    len_at,
                    field,
                    n.min(i64::MAX as u64) as i64,
                    min_item,
                    MAX_ARRAY_ELEMS,
                )?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, field, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

/// The alignment a file with this metadata uses: `general.alignment` (a non-zero power of two
/// stored as UINT32) or the default of 32. The error is a message for the caller to place.
pub fn alignment_of(metadata: &Metadata) -> std::result::Result<u64, String> {
    match metadata.get(ALIGNMENT_KEY) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => Ok(*a as u64),
        Some(v) => Err(format!(
            "must be a non-zero power of two stored as uint32, found {} {v}",
            v.value_type().name()
        )),
    }
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub fn pad(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// Parses the header from `bytes`, a prefix of a file of `file_len` bytes named `file`.
pub fn parse_header(file: &str, bytes: &[u8], file_len: u64) -> Result<Parsed> {
    let mut c = Cursor {
        file,
        bytes,
        file_len,
        pos: 0,
    };
    match parse(&mut c) {
        Ok(h) => Ok(Parsed::Done(h)),
        Err(Fail::Bad(e)) => Err(e),
        Err(Fail::Short(s)) => Ok(Parsed::NeedMore(s.needed)),
    }
}

fn parse(c: &mut Cursor) -> R<Header> {
    let magic = c.array::<4>("magic")?;
    if magic != MAGIC {
        return Err(c.bad(0, "magic", format!("not a GGUF file (magic {magic:02x?})")));
    }
    let version = c.u32("version")?;
    if version & 0xFFFF == 0 && version != 0 {
        return Err(c.bad(
            4,
            "version",
            format!(
                "version {version:#x} looks byte-swapped: big-endian GGUF files are not supported"
            ),
        ));
    }
    match version {
        2 | 3 => {}
        1 => return Err(c.bad(4, "version", "GGUF version 1 is obsolete and not supported")),
        v => return Err(c.bad(4, "version", format!("unsupported GGUF version {v}"))),
    }
    // A tensor info is at least: name length, n_dims, type, offset (a scalar has no dims).
    let n_tensors = c.count("tensor count", 8 + 4 + 4 + 8, u64::MAX)?;
    // A key/value pair is at least: key length, one key byte, value type, one value byte.
    let n_kv = c.count("metadata count", 8 + 1 + 4 + 1, u64::MAX)?;

    let mut metadata = Metadata::new();
    let mut alignment_at = 0;
    for i in 0..n_kv {
        let at = c.pos as u64;
        let key = c.string(&format!("key of metadata entry {i}"))?;
        if key.is_empty() {
            return Err(c.bad(at, "metadata key", format!("entry {i} has an empty key")));
        }
        if metadata.contains(&key) {
            return Err(c.bad(at, "metadata key", format!("duplicate key {key}")));
        }
        let ty = c.value_type(&key)?;
        let value = c.value(ty, &key, 0)?;
        if key == ALIGNMENT_KEY {
            alignment_at = at;
        }
        metadata.set(key, value);
    }

    let alignment =
        alignment_of(&metadata).map_err(|msg| c.bad(alignment_at, ALIGNMENT_KEY, msg))?;

    // Capacities are capped: the counts were checked against the file size, but a record
    // in memory is larger than its smallest encoding, so growth is left to the vectors.
    let mut tensors = Vec::with_capacity(n_tensors.min(4096) as usize);
    let mut names = HashSet::with_capacity(n_tensors.min(4096) as usize);
    for i in 0..n_tensors {
        tensors.push(tensor_info(c, i, &mut names)?);
    }

    // llama.cpp seeks to the padded data start only when there are tensors.
    let data_offset = if tensors.is_empty() {
        c.pos as u64
    } else {
        let data_offset = pad(c.pos as u64, alignment);
        if data_offset > c.file_len {
            return Err(c.bad(
                c.pos as u64,
                "data section",
                format!(
                    "the data section would start at {data_offset}, past the end of the file ({} bytes)",
                    c.file_len
                ),
            ));
        }
        data_offset
    };
    check_data_layout(c, &tensors, alignment, c.file_len - data_offset)?;
    Ok(Header {
        version,
        alignment,
        metadata,
        tensors,
        data_offset,
    })
}

/// Reads one tensor-info record and checks it on its own (name, shape, type).
fn tensor_info(c: &mut Cursor, i: u64, names: &mut HashSet<String>) -> R<TensorInfo> {
    let info_offset = c.pos as u64;
    let field = format!("tensor info {i}");
    let name = c.string(&format!("{field} name"))?;
    if name.len() > MAX_TENSOR_NAME {
        return Err(c.bad(
            info_offset,
            &field,
            format!("tensor name {name:?} is longer than {MAX_TENSOR_NAME} bytes"),
        ));
    }
    if !names.insert(name.clone()) {
        return Err(c.bad(info_offset, &field, format!("duplicate tensor name {name}")));
    }
    let dims_at = c.pos as u64;
    let n_dims = c.u32(&format!("{name}: n_dims"))?;
    // 0 dimensions is a scalar; llama.cpp accepts it, so do we.
    if n_dims > MAX_DIMS {
        return Err(c.bad(
            dims_at,
            &format!("{name}: n_dims"),
            format!("{n_dims} dimensions (at most {MAX_DIMS} allowed)"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let mut elems: u64 = 1;
    for d in 0..n_dims {
        let at = c.pos as u64;
        let dim_field = format!("{name}: ne[{d}]");
        let ne = c.i64(&dim_field)?;
        if ne < 0 {
            return Err(c.bad(at, &dim_field, format!("negative dimension {ne}")));
        }
        elems = elems
            .checked_mul(ne as u64)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or_else(|| {
                c.bad(
                    at,
                    &dim_field,
                    format!("the element count overflows 2^63 - 1 at dimension {d} ({ne})"),
                )
            })?;
        dims.push(ne as u64);
    }
    let type_at = c.pos as u64;
    let type_field = format!("{name}: type");
    let ty = GgmlType(c.u32(&type_field)?);
    if let Some(t) = ty.info() {
        if t.removed {
            return Err(c.bad(
                type_at,
                &type_field,
                format!("type {} (id {}) was removed from ggml", t.name, ty.0),
            ));
        }
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % t.block_elems as u64 != 0 {
            return Err(c.bad(
                type_at,
                &type_field,
                format!(
                    "ne[0] = {ne0} is not a multiple of the {} block size {}",
                    t.name, t.block_elems
                ),
            ));
        }
    }
    let offset = c.u64(&format!("{name}: offset"))?;
    let info = TensorInfo {
        name,
        ty,
        dims,
        offset,
        info_offset,
    };
    // A known type whose byte size does not fit in 64 bits would otherwise look "unknown".
    if ty.info().is_some() && info.nbytes().is_none() {
        return Err(c.bad(
            type_at,
            &type_field,
            format!("the size in bytes of {} x {ty} overflows 64 bits", elems),
        ));
    }
    Ok(info)
}

/// Checks where the tensors' data lies, with llama.cpp's rule: the data of the tensors is
/// contiguous, in record order, each one padded to the alignment, starting at offset 0.
///
/// We enforce the rule (rather than only "inside the file") because llama.cpp refuses
/// files that break it, so none exist in the wild, and because it guarantees that no two
/// tensors overlap and that writing a parsed file back reproduces its bytes.
///
/// A tensor of a type id newer than this build has no known size. Its data is taken to run
/// up to the next tensor's offset (which must not be smaller and must be aligned), or to the
/// end of the file for the last one; the exact rule resumes after the next known tensor.
fn check_data_layout(c: &Cursor, tensors: &[TensorInfo], alignment: u64, data_len: u64) -> R<()> {
    // `Some(x)`: the next offset must be exactly x; `None`: it must be at least `floor`.
    let mut expected = Some(0u64);
    let mut floor = 0u64;
    for t in tensors {
        let field = format!("{}: offset", t.name);
        match expected {
            Some(x) if t.offset != x => {
                return Err(c.bad(
                    t.info_offset,
                    &field,
                    format!(
                        "tensor {} has offset {}, expected {x} (tensor data must be contiguous, \
                         in record order, each padded to {alignment} bytes)",
                        t.name, t.offset
                    ),
                ))
            }
            None if t.offset < floor || t.offset % alignment != 0 => {
                return Err(c.bad(
                    t.info_offset,
                    &field,
                    format!(
                        "tensor {} has offset {}, expected a multiple of {alignment} that is at \
                         least {floor}",
                        t.name, t.offset
                    ),
                ))
            }
            _ => {}
        }
        if t.offset > data_len {
            return Err(c.bad(
                t.info_offset,
                &field,
                format!(
                    "tensor {} starts at {} but the data section holds {data_len} bytes",
                    t.name, t.offset
                ),
            ));
        }
        match t.nbytes() {
            Some(n) => {
                let end = t.offset.checked_add(n).filter(|&end| end <= data_len);
                let Some(end) = end else {
                    return Err(c.bad(
                        t.info_offset,
                        &field,
                        format!(
                            "tensor {} data [{}, +{n}) runs past the end of the data section \
                             ({data_len} bytes)",
                            t.name, t.offset
                        ),
                    ));
                };
                expected = Some(pad(end, alignment));
            }
            None => {
                expected = None;
                floor = t.offset;
            }
        }
    }
    Ok(())
}
