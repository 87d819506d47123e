//! Split files: their naming (`<prefix>-%05d-of-%05d.gguf`) and how a model is cut into parts
//! or joined back, exactly as llama.cpp's `llama-gguf-split` does it.
//!
//! The naming functions are pure string functions so that a local path, a URL or a
//! browser-relative name all split the same way. The planning functions decide what each
//! output file holds (metadata, tensor records, in order) and return [`GgufWriter`]s; the
//! caller streams the tensor bytes. What `llama-gguf-split` does, and so what we do:
//!
//! * **split**: all metadata goes into the first part only; every part gets `split.no`
//!   (UINT16, 0-based), `split.tensors.count` (INT32) and `split.count` (UINT16), in that
//!   order after any other keys (ggml's "set" moves a key to the end). A part is closed when
//!   the next tensor would make it exceed `--split-max-size` (tensors counted as their size
//!   padded to 32 bytes, metadata not counted) or every `--split-max-tensors` tensors. With
//!   `--no-tensor-first-split` the first part holds metadata only.
//! * **merge**: the first part's metadata with `split.count` set to 0 (moved to the end), then
//!   every part's tensors in order.
//! * Both write GGUF version 3 and shapes in ggml's form ([`canonical_dims`]).
//!
//! Where llama-gguf-split would write a broken file we deliberately differ: with a
//! `general.alignment` other than 32 it pads to 32 anyway; we pad to the declared alignment.

use super::value::{Metadata, Value};
use super::writer::{canonical_dims, GgufWriter};
use super::TensorInfo;
use crate::{Error, Result};

/// A parsed split name: the prefix and the 1-based part number and total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitName {
    pub prefix: String,
    /// 1-based part number.
    pub number: u32,
    pub count: u32,
}

/// Parses `…-00002-of-00006.gguf` (optionally followed by a URL query or fragment).
pub fn parse_split_name(path: &str) -> Option<SplitName> {
    let cut = path.find(['?', '#']).unwrap_or(path.len());
    let (path, _) = path.split_at(cut);
    let stem = path.strip_suffix(".gguf")?;
    // "-NNNNN-of-MMMMM" is 15 bytes.
    if stem.len() < 15 || !stem.is_char_boundary(stem.len() - 15) {
        return None;
    }
    let (prefix, tail) = stem.split_at(stem.len() - 15);
    let b = tail.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if b[0] != b'-' || &b[6..10] != b"-of-" || !digits(&b[1..6]) || !digits(&b[10..15]) {
        return None;
    }
    let number: u32 = tail[1..6].parse().ok()?;
    let count: u32 = tail[10..15].parse().ok()?;
    if number == 0 || count == 0 || number > count {
        return None;
    }
    Some(SplitName {
        prefix: prefix.to_string(),
        number,
        count,
    })
}

/// The path of part `number` (1-based) of `count` for `prefix`, keeping any query suffix of
/// `like` (so signed URLs keep working).
pub fn split_path(prefix: &str, number: u32, count: u32) -> String {
    format!("{prefix}-{number:05}-of-{count:05}.gguf")
}

/// Like [`split_path`], but rebuilt from another part's full path or URL, keeping its query.
pub fn sibling_path(any_part: &str, number: u32) -> Option<String> {
    let name = parse_split_name(any_part)?;
    let query = any_part
        .find(['?', '#'])
        .map(|i| &any_part[i..])
        .unwrap_or("");
    Some(format!(
        "{}{query}",
        split_path(&name.prefix, number, name.count)
    ))
}

const SPLIT_NO: &str = "split.no";
const SPLIT_COUNT: &str = "split.count";
const SPLIT_TENSORS: &str = "split.tensors.count";
/// The keys gguf-split maintains.
pub const SPLIT_KEYS: [&str; 3] = [SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS];

/// gguf-split counts each tensor as its size padded to this many bytes.
const SIZE_PADDING: u64 = 32;

/// When to start a new part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitLimit {
    /// At most this many tensors per part (`--split-max-tensors`).
    Tensors(u64),
    /// At most this many bytes of (padded) tensor data per part (`--split-max-size`).
    Bytes(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitOptions {
    pub limit: SplitLimit,
    /// The first part holds metadata only (`--no-tensor-first-split`).
    pub no_tensor_first_split: bool,
}

impl Default for SplitOptions {
    /// gguf-split's defaults: 128 tensors per part.
    fn default() -> Self {
        SplitOptions {
            limit: SplitLimit::Tensors(128),
            no_tensor_first_split: false,
        }
    }
}

/// One output file of a split or merge: which input tensors it holds (indices into the
/// tensor list that was planned) and the writer with its header.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    pub sources: Vec<usize>,
    pub writer: GgufWriter,
}

/// Parses a gguf-split size: a positive integer followed by `M` (10^6 bytes) or `G` (10^9).
pub fn parse_split_size(text: &str) -> Result<u64> {
    let bad = |why: &str| Error::Invalid(format!("split size {text:?}: {why}"));
    let (digits, unit) = match text.as_bytes().last() {
        Some(b'M') => (&text[..text.len() - 1], 1_000_000u64),
        Some(b'G') => (&text[..text.len() - 1], 1_000_000_000u64),
        _ => return Err(bad("supported units are M (megabytes) and G (gigabytes)")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| bad("expected a whole number before the unit"))?;
    if n == 0 {
        return Err(bad("the size must be positive"));
    }
    n.checked_mul(unit).ok_or_else(|| bad("too large"))
}

/// ggml's "set": removes the key wherever it is and appends it.
fn set_last(md: &mut Metadata, key: &str, value: Value) {
    md.remove(key);
    md.set(key, value);
}

fn add_tensor_canonical(w: &mut GgufWriter, t: &TensorInfo) -> Result<()> {
    w.add_tensor(&t.name, t.ty, &canonical_dims(&t.dims))?;
    Ok(())
}

/// Plans the parts of a split of a model with `metadata` and `tensors` (in order).
pub fn plan_split(
    metadata: &Metadata,
    tensors: &[TensorInfo],
    options: SplitOptions,
) -> Result<Vec<PlannedFile>> {
    if options.limit == SplitLimit::Tensors(0) || options.limit == SplitLimit::Bytes(0) {
        return Err(Error::Invalid("the split limit must be positive".into()));
    }
    let n_tensors = i32::try_from(tensors.len()).map_err(|_| {
        Error::Invalid(format!(
            "{} tensors do not fit in split.tensors.count (int32)",
            tensors.len()
        ))
    })?;
    // Assign tensors to parts with gguf-split's rule.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    if options.no_tensor_first_split {
        groups.push(Vec::new());
    }
    let mut current: u64 = 0;
    for (i, t) in tensors.iter().enumerate() {
        let nbytes = t.nbytes().ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor {} has type {}, whose size this version of sluice does not know",
                t.name, t.ty
            ))
        })?;
        let padded = nbytes.div_ceil(SIZE_PADDING) * SIZE_PADDING;
        let next = current.saturating_add(padded);
        let cut = match options.limit {
            SplitLimit::Bytes(max) => next > max,
            SplitLimit::Tensors(k) => i > 0 && (i as u64).is_multiple_of(k),
        };
        if cut {
            if groups.last().is_some_and(|g| g.is_empty()) {
                return Err(Error::Invalid(format!(
                    "a part would hold no tensors: tensor {} alone is {padded} bytes; the split \
                     size or tensor limit is too small",
                    t.name
                )));
            }
            groups.push(Vec::new());
            current = padded;
        } else {
            current = next;
        }
        if let Some(g) = groups.last_mut() {
            g.push(i);
        }
    }
    let n_split = u16::try_from(groups.len()).map_err(|_| {
        Error::Invalid(format!(
            "{} parts do not fit in split.count (uint16)",
            groups.len()
        ))
    })?;
    let mut files = Vec::with_capacity(groups.len());
    for (no, sources) in groups.into_iter().enumerate() {
        let mut md = if no == 0 {
            metadata.clone()
        } else {
            Metadata::new()
        };
        set_last(&mut md, SPLIT_NO, Value::U16(no as u16));
        set_last(&mut md, SPLIT_COUNT, Value::U16(0));
        set_last(&mut md, SPLIT_TENSORS, Value::I32(n_tensors));
        set_last(&mut md, SPLIT_COUNT, Value::U16(n_split));
        let mut writer = GgufWriter::new(md)?;
        for &i in &sources {
            add_tensor_canonical(&mut writer, &tensors[i])?;
        }
        files.push(PlannedFile { sources, writer });
    }
    Ok(files)
}

/// Plans the merged file of a split model: the first part's metadata and all tensors, in
/// order. With `drop_split_keys` the `split.*` keys are removed instead of `split.count`
/// being set to 0 as gguf-split does (so merging a split of a file without those keys gives
/// back that file).
pub fn plan_merge(
    first_metadata: &Metadata,
    tensors: &[TensorInfo],
    drop_split_keys: bool,
) -> Result<PlannedFile> {
    let mut md = first_metadata.clone();
    match md.get_uint_lossy(SPLIT_COUNT)? {
        Some(n) if n >= 1 => {}
        Some(n) => {
            return Err(Error::model(format!(
                "{SPLIT_COUNT} is {n}: this is already a merged file"
            )))
        }
        None => {
            return Err(Error::model(format!(
                "the input has no {SPLIT_COUNT} key: it is not a split model"
            )))
        }
    }
    if drop_split_keys {
        for key in SPLIT_KEYS {
            md.remove(key);
        }
    } else {
        set_last(&mut md, SPLIT_COUNT, Value::U16(0));
    }
    let mut writer = GgufWriter::new(md)?;
    for t in tensors {
        if t.nbytes().is_none() {
            return Err(Error::Unsupported(format!(
                "tensor {} has type {}, whose size this version of sluice does not know",
                t.name, t.ty
            )));
        }
        add_tensor_canonical(&mut writer, t)?;
    }
    Ok(PlannedFile {
        sources: (0..tensors.len()).collect(),
        writer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_cpp_names() {
        let n = parse_split_name("/m/DeepSeek-V3-0324-UD-Q2_K_XL-00002-of-00006.gguf").unwrap();
        assert_eq!(n.prefix, "/m/DeepSeek-V3-0324-UD-Q2_K_XL");
        assert_eq!((n.number, n.count), (2, 6));
        assert_eq!(
            sibling_path("http://h/x-00002-of-00006.gguf?sig=1", 1).unwrap(),
            "http://h/x-00001-of-00006.gguf?sig=1"
        );
        assert!(parse_split_name("model.gguf").is_none());
        assert!(parse_split_name("a-00007-of-00006.gguf").is_none());
        assert!(parse_split_name("a-0000x-of-00006.gguf").is_none());
        assert!(parse_split_name("é-00001-of-00002.gguf").is_some());
    }
}
