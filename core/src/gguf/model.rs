//! One model from one or more GGUF files.
//!
//! Given any part of a split model, [`GgufModel::open`] finds its siblings by name, checks the
//! `split.*` keys of every part, and presents one tensor index. Metadata comes from the first
//! part only, as in llama.cpp. Tensor data is reached through each part's
//! [`ByteSource`]: in place when the source is memory (a map), by reads otherwise.

use super::split::{parse_split_name, sibling_path};
use super::{read_header, Header, Metadata, TensorInfo};
use crate::source::{ByteSource, LocalBoxFuture};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// Opens the byte source behind a path or URL (a file, a memory map, an HTTP resource).
pub trait SourceOpener {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>>;
}

/// One file of a (possibly split) model.
pub struct Part {
    pub path: String,
    pub source: Arc<dyn ByteSource>,
    pub header: Header,
}

/// A tensor of the model: its record, the part holding it, and its absolute data offset.
#[derive(Clone, Debug)]
pub struct ModelTensor {
    pub info: TensorInfo,
    /// Index into [`GgufModel::parts`].
    pub part: usize,
    /// Absolute offset of the first data byte within that part's file.
    pub data_start: u64,
}

impl ModelTensor {
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

/// A model assembled from its GGUF parts.
pub struct GgufModel {
    pub parts: Vec<Part>,
    tensors: Vec<ModelTensor>,
    by_name: HashMap<String, usize>,
}

const SPLIT_NO: &str = "split.no";
const SPLIT_COUNT: &str = "split.count";
const SPLIT_TENSORS: &str = "split.tensors.count";

impl GgufModel {
    /// Opens the model that `path` belongs to (any part of a split, or a single file).
    pub async fn open(path: &str, opener: &dyn SourceOpener) -> Result<GgufModel> {
        let source = opener.open(path).await?;
        let header = read_header(source.as_ref()).await?;
        let count = header.metadata.get_uint_lossy(SPLIT_COUNT)?.unwrap_or(1);
        if count <= 1 {
            return Self::from_parts(vec![Part {
                path: path.to_string(),
                source,
                header,
            }]);
        }
        let count = u32::try_from(count)
            .map_err(|_| Error::model(format!("{path}: split.count {count} is absurd")))?;
        let name = parse_split_name(path).ok_or_else(|| {
            Error::model(format!(
                "{path}: split.count is {count} but the name does not end in -NNNNN-of-{count:05}.gguf, \
                 so the other parts cannot be found"
            ))
        })?;
        if name.count != count {
            return Err(Error::model(format!(
                "{path}: the name says {} parts but split.count is {count}",
                name.count
            )));
        }
        let mut first = Some(Part {
            path: path.to_string(),
            source,
            header,
        });
        let mut parts = Vec::with_capacity(count as usize);
        for number in 1..=count {
            if number == name.number {
                parts.extend(first.take());
                continue;
            }
            let sibling = sibling_path(path, number).unwrap_or_default();
            let source = opener.open(&sibling).await.map_err(|e| {
                Error::model(format!(
                    "part {number} of {count} of this model, {sibling}, cannot be opened: {e}"
                ))
            })?;
            let header = read_header(source.as_ref()).await?;
            parts.push(Part {
                path: sibling,
                source,
                header,
            });
        }
        Self::from_parts(parts)
    }

    /// Assembles already-opened parts, in order, checking the `split.*` keys.
    pub fn from_parts(parts: Vec<Part>) -> Result<GgufModel> {
        let n_parts = parts.len() as u64;
        let mut expected_tensors = None;
        for (i, p) in parts.iter().enumerate() {
            let md = &p.header.metadata;
            // gguf-split --merge leaves split.count = 0 in the merged file: one part.
            let count = md.get_uint_lossy(SPLIT_COUNT)?.unwrap_or(1).max(1);
            let no = md.get_uint_lossy(SPLIT_NO)?.unwrap_or(0);
            if count != n_parts {
                return Err(Error::model(format!(
                    "{}: split.count is {count} but the model has {n_parts} part(s)",
                    p.path
                )));
            }
            if no != i as u64 {
                return Err(Error::model(format!(
                    "{}: split.no is {no} but it is part {} (split.no {i} expected)",
                    p.path,
                    i + 1
                )));
            }
            if let Some(n) = md.get_uint_lossy(SPLIT_TENSORS)? {
                match expected_tensors {
                    None => expected_tensors = Some(n),
                    Some(m) if m != n => {
                        return Err(Error::model(format!(
                            "{}: split.tensors.count is {n} but the first part says {m}",
                            p.path
                        )))
                    }
                    _ => {}
                }
            }
        }
        let mut tensors = Vec::new();
        let mut by_name = HashMap::new();
        for (pi, p) in parts.iter().enumerate() {
            for t in &p.header.tensors {
                if by_name.insert(t.name.clone(), tensors.len()).is_some() {
                    return Err(Error::model(format!(
                        "{}: tensor {} also appears in an earlier part",
                        p.path, t.name
                    )));
                }
                tensors.push(ModelTensor {
                    info: t.clone(),
                    part: pi,
                    data_start: p.header.data_offset + t.offset,
                });
            }
        }
        if let Some(n) = expected_tensors {
            if n != tensors.len() as u64 {
                return Err(Error::model(format!(
                    "{}: split.tensors.count is {n} but the parts hold {} tensors",
                    parts[0].path,
                    tensors.len()
                )));
            }
        }
        Ok(GgufModel {
            parts,
            tensors,
            by_name,
        })
    }

    /// Metadata of the model (from the first part).
    pub fn metadata(&self) -> &Metadata {
        &self.parts[0].header.metadata
    }

    /// Drops the vocabulary arrays (`tokenizer.ggml.tokens`, `merges`, `scores`,
    /// `token_type`) from the metadata once the tokenizer and the model are built from them:
    /// parsed, they are most of a header's memory (~6 MB for a 49k vocabulary, against 9 MB
    /// of weights read per decoded token on the smallest bench model), and nothing reads them
    /// again. [`Self::metadata`] no longer has those keys afterwards.
    pub fn release_vocabulary(&mut self) {
        let md = &mut self.parts[0].header.metadata;
        for key in [
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.scores",
            "tokenizer.ggml.token_type",
        ] {
            md.remove(key);
        }
    }

    pub fn tensors(&self) -> &[ModelTensor] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&ModelTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The source holding `t`'s data.
    pub fn source_of(&self, t: &ModelTensor) -> &Arc<dyn ByteSource> {
        &self.parts[t.part].source
    }

    /// `t`'s bytes in place, when its part is memory (a map); `None` otherwise.
    pub fn tensor_bytes(&self, t: &ModelTensor) -> Result<Option<&[u8]>> {
        let n = self.known_size(t)?;
        let Some(all) = self.source_of(t).as_slice() else {
            return Ok(None);
        };
        let range = usize::try_from(t.data_start)
            .ok()
            .zip(usize::try_from(t.data_start + n).ok());
        match range.and_then(|(start, end)| all.get(start..end)) {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(Error::io(
                self.source_of(t).name(),
                format!("tensor {} lies outside the mapped file", t.name()),
            )),
        }
    }

    /// Reads `len` bytes at `offset` within `t`'s data.
    pub async fn read_tensor_range(
        &self,
        t: &ModelTensor,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let n = self.known_size(t)?;
        if offset.checked_add(len as u64).is_none_or(|end| end > n) {
            return Err(Error::Invalid(format!(
                "range +{offset}..+{len} is outside tensor {} ({n} bytes)",
                t.name()
            )));
        }
        self.source_of(t).read_at(t.data_start + offset, len).await
    }

    fn known_size(&self, t: &ModelTensor) -> Result<u64> {
        t.info.nbytes().ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor {} has ggml type {}, which this version of sluice cannot read",
                t.name(),
                t.info.ty
            ))
        })
    }
}
