//! Integrity manifests: a sidecar listing a hash of every tensor and of every expert slab,
//! and a [`VerifyingSource`] that checks fetched bytes against it.
//!
//! # File
//! `sluice manifest MODEL` writes `<prefix>.manifest.json` next to the model, where
//! `<prefix>` is the file name without `.gguf` (or, for a split model, without
//! `-NNNNN-of-MMMMM.gguf`): `m.gguf` → `m.manifest.json`, `m-00001-of-00003.gguf` →
//! `m.manifest.json`. It is JSON:
//!
//! ```json
//! {
//!   "sluice_manifest": 1,
//!   "hash": "blake3",
//!   "parts": [{"file": "m-00001-of-00003.gguf", "size": 123456}, ...],
//!   "tensors": [
//!     {"name": "token_embd.weight", "part": 0, "offset": 8192, "size": 4096, "hash": "<64 hex>"},
//!     {"name": "blk.3.ffn_up_exps.weight", "part": 1, "offset": 1048576, "size": 2097152,
//!      "hash": "<64 hex>",
//!      "experts": {"count": 8, "slab_size": 262144, "hashes": ["<64 hex>", ...]}}
//!   ]
//! }
//! ```
//! `part` indexes `parts`; `offset` is the absolute byte offset of the tensor's data in that
//! file; `hash` is BLAKE3 over the tensor's bytes. Every 3-D tensor whose name contains
//! `_exps` also carries one hash per expert slab (expert `e` = bytes
//! `offset + e*slab_size .. + slab_size`, the unit the expert store fetches).
//!
//! BLAKE3 was chosen over a non-cryptographic hash (xxh3): it is fast enough to verify
//! at network and disk speed (several GB/s with SIMD), and being cryptographic it lets a
//! manifest obtained from a trusted place vouch for weights fetched from an untrusted mirror.
//!
//! # Verification
//! A [`VerifyingSource`] wraps a part's source. Every read (or batch of reads) that covers a
//! whole tensor, or a whole expert slab, is hashed and compared; a mismatch is an error
//! naming the file, tensor and expert, and the bytes are never handed out. Reads covering
//! neither (a header prefix, part of a slab) pass through unverified.

use serde::{Deserialize, Serialize};
use sluice_core::gguf::split::parse_split_name;
use sluice_core::gguf::{GgufModel, ModelTensor, SourceOpener};
use sluice_core::source::{ByteSource, LocalBoxFuture};
use sluice_core::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// The format version written in `sluice_manifest`.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub sluice_manifest: u32,
    pub hash: String,
    pub parts: Vec<ManifestPart>,
    pub tensors: Vec<ManifestTensor>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestPart {
    pub file: String,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestTensor {
    pub name: String,
    pub part: usize,
    pub offset: u64,
    pub size: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<ExpertSlabs>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpertSlabs {
    pub count: u64,
    pub slab_size: u64,
    pub hashes: Vec<String>,
}

/// The sidecar path for a model path or URL (query dropped); `None` if it is not `.gguf`.
pub fn manifest_path_for(model_path: &str) -> Option<String> {
    let path = model_path.split(['?', '#']).next().unwrap_or(model_path);
    let prefix = match parse_split_name(path) {
        Some(s) => s.prefix,
        None => path.strip_suffix(".gguf")?.to_string(),
    };
    Some(format!("{prefix}.manifest.json"))
}

/// The last path segment of a path or URL, without query.
pub fn file_name_of(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn hex(hash: blake3::Hash) -> String {
    hash.to_hex().to_string()
}

/// Whether `t` is a stacked expert tensor hashed per slab.
fn is_expert_tensor(t: &ModelTensor) -> bool {
    t.info.dims.len() == 3 && t.name().contains("_exps")
}

/// Bytes hashed per read when a tensor is not addressable memory.
const READ_CHUNK: u64 = 64 << 20;

/// Hashes one tensor (and its expert slabs).
fn hash_tensor(model: &GgufModel, t: &ModelTensor) -> Result<ManifestTensor> {
    let size = t.info.nbytes().ok_or_else(|| {
        Error::Unsupported(format!(
            "tensor {} has unknown ggml type {}",
            t.name(),
            t.info.ty
        ))
    })?;
    let experts = is_expert_tensor(t).then(|| t.info.ne(2)).filter(|&n| n > 0);
    let slab_size = experts.map_or(size, |n| size / n);
    let mut whole = blake3::Hasher::new();
    let mut slab_hashes = Vec::new();
    let mapped = model.tensor_bytes(t)?;
    // Walk in slab-sized units (whole tensor for non-expert tensors), chunked for reads.
    let units = experts.unwrap_or(1);
    for unit in 0..units {
        let unit_start = unit * slab_size;
        let mut slab = blake3::Hasher::new();
        let mut at = 0;
        while at < slab_size {
            let n = (slab_size - at).min(READ_CHUNK);
            let from = unit_start + at;
            let owned;
            let bytes: &[u8] = match mapped {
                Some(all) => &all[from as usize..(from + n) as usize],
                None => {
                    owned = sluice_core::source::block_on(
                        model.read_tensor_range(t, from, n as usize),
                    )?;
                    &owned
                }
            };
            whole.update(bytes);
            if experts.is_some() {
                slab.update(bytes);
            }
            at += n;
        }
        if experts.is_some() {
            slab_hashes.push(hex(slab.finalize()));
        }
    }
    Ok(ManifestTensor {
        name: t.name().to_string(),
        part: t.part,
        offset: t.data_start,
        size,
        hash: hex(whole.finalize()),
        experts: experts.map(|count| ExpertSlabs {
            count,
            slab_size,
            hashes: slab_hashes,
        }),
    })
}

impl Manifest {
    /// Hashes every tensor of `model`, using up to `threads` threads.
    pub fn build(model: &GgufModel, threads: usize) -> Result<Manifest> {
        let tensors = model.tensors();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<Vec<(usize, ManifestTensor)>>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(t) = tensors.get(i) else {
                                return Ok(done);
                            };
                            done.push((i, hash_tensor(model, t)?));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(Error::Invalid("hashing thread panicked".into())))
                })
                .collect()
        });
        let mut hashed = Vec::with_capacity(tensors.len());
        for r in results {
            hashed.extend(r?);
        }
        hashed.sort_by_key(|(i, _)| *i);
        Ok(Manifest {
            sluice_manifest: MANIFEST_VERSION,
            hash: "blake3".into(),
            parts: model
                .parts
                .iter()
                .map(|p| ManifestPart {
                    file: file_name_of(&p.path).to_string(),
                    size: p.source.len(),
                })
                .collect(),
            tensors: hashed.into_iter().map(|(_, t)| t).collect(),
        })
    }

    /// Parses a manifest document; `name` is used in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(name, e.column() as u64, "manifest JSON", e.to_string()))?;
        if m.sluice_manifest != MANIFEST_VERSION || m.hash != "blake3" {
            return Err(Error::Unsupported(format!(
                "{name}: manifest version {} with hash {:?} (this sluice reads version {MANIFEST_VERSION}, blake3)",
                m.sluice_manifest, m.hash
            )));
        }
        for t in &m.tensors {
            let bad_slabs = t.experts.as_ref().is_some_and(|e| {
                e.hashes.len() as u64 != e.count || e.count.checked_mul(e.slab_size) != Some(t.size)
            });
            if t.part >= m.parts.len() || bad_slabs {
                return Err(Error::model(format!(
                    "{name}: tensor {} has an inconsistent entry",
                    t.name
                )));
            }
        }
        Ok(m)
    }

    /// Writes the manifest to `path`; refuses to replace an existing file unless `force`.
    pub fn write(&self, path: &Path, force: bool) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::io(
                    &shown,
                    "a manifest already exists (pass --force to replace it)",
                )
            } else {
                Error::io(&shown, format!("cannot create: {e}"))
            }
        })?;
        std::io::Write::write_all(&mut file, &text).map_err(|e| Error::io(&shown, e.to_string()))
    }

    /// Checks that this manifest describes `model` (same parts, tensors, offsets, sizes).
    pub fn check_against(&self, model: &GgufModel) -> Result<()> {
        let mismatch = |what: String| {
            Err(Error::model(format!(
                "the manifest does not describe this model: {what}"
            )))
        };
        if self.parts.len() != model.parts.len() {
            return mismatch(format!(
                "{} parts listed, the model has {}",
                self.parts.len(),
                model.parts.len()
            ));
        }
        if self.tensors.len() != model.tensors().len() {
            return mismatch(format!(
                "{} tensors listed, the model has {}",
                self.tensors.len(),
                model.tensors().len()
            ));
        }
        for (m, t) in self.tensors.iter().zip(model.tensors()) {
            if m.name != t.name()
                || m.part != t.part
                || m.offset != t.data_start
                || Some(m.size) != t.info.nbytes()
            {
                return mismatch(format!(
                    "entry for {} differs from the model's tensor {}",
                    m.name,
                    t.name()
                ));
            }
        }
        Ok(())
    }

    fn tensor(&self, name: &str) -> Result<&ManifestTensor> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::model(format!("the manifest has no tensor {name}")))
    }

    /// Verifies the whole bytes of tensor `name`.
    pub fn verify_tensor(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let t = self.tensor(name)?;
        let file = &self.parts[t.part].file;
        check(file, &t.hash, bytes, || {
            format!("tensor {name} (bytes {}..{})", t.offset, t.offset + t.size)
        })
    }

    /// Verifies the slab of `expert` in expert tensor `name`.
    pub fn verify_expert(&self, name: &str, expert: u64, bytes: &[u8]) -> Result<()> {
        let t = self.tensor(name)?;
        let slabs = t.experts.as_ref().ok_or_else(|| {
            Error::model(format!("tensor {name} has no expert slabs in the manifest"))
        })?;
        let hash = slabs.hashes.get(expert as usize).ok_or_else(|| {
            Error::model(format!(
                "tensor {name} has {} experts, not {}",
                slabs.count,
                expert + 1
            ))
        })?;
        let start = t.offset + expert * slabs.slab_size;
        check(&self.parts[t.part].file, hash, bytes, || {
            format!(
                "tensor {name} expert {expert} (bytes {start}..{})",
                start + slabs.slab_size
            )
        })
    }
}

fn check(file: &str, expected: &str, bytes: &[u8], what: impl FnOnce() -> String) -> Result<()> {
    let got = hex(blake3::hash(bytes));
    if got != expected {
        return Err(Error::io(
            file,
            format!(
                "{} does not match the manifest (blake3 {got}, expected {expected}): corrupt data, \
                 or a manifest for another model",
                what()
            ),
        ));
    }
    Ok(())
}

/// Reads the sidecar manifest of a local model, if there is one.
pub fn load_local_sidecar(model_path: &str) -> Result<Option<Manifest>> {
    let Some(path) = manifest_path_for(model_path) else {
        return Ok(None);
    };
    match std::fs::read(&path) {
        Ok(bytes) => Manifest::parse(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e.to_string())),
    }
}

/// A source whose reads are checked against a manifest.
pub struct VerifyingSource {
    inner: Arc<dyn ByteSource>,
    manifest: Arc<Manifest>,
    /// Indexes into `manifest.tensors` of this part's tensors, by offset.
    tensors: Vec<usize>,
}

impl VerifyingSource {
    /// Wraps `inner`, which must be the manifest's part named like `inner`'s file.
    pub fn new(inner: Arc<dyn ByteSource>, manifest: Arc<Manifest>) -> Result<VerifyingSource> {
        let file = file_name_of(inner.name());
        let part = manifest
            .parts
            .iter()
            .position(|p| p.file == file)
            .ok_or_else(|| {
                Error::model(format!(
                    "{}: the manifest lists no part named {file}",
                    inner.name()
                ))
            })?;
        if manifest.parts[part].size != inner.len() {
            return Err(Error::model(format!(
                "{}: {} bytes, but the manifest says {} (another version of the file?)",
                inner.name(),
                inner.len(),
                manifest.parts[part].size
            )));
        }
        let mut tensors: Vec<usize> = (0..manifest.tensors.len())
            .filter(|&i| manifest.tensors[i].part == part)
            .collect();
        tensors.sort_by_key(|&i| manifest.tensors[i].offset);
        Ok(VerifyingSource {
            inner,
            manifest,
            tensors,
        })
    }

    /// Checks every whole tensor and whole expert slab inside `offset..offset+bytes.len()`;
    /// errors name this source (path or URL).
    pub fn verify_range(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.verify_covered(offset, bytes).map_err(|e| match e {
            Error::Io { msg, .. } => Error::io(self.inner.name(), msg),
            other => other,
        })
    }

    fn verify_covered(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset + bytes.len() as u64;
        let first = self.tensors.partition_point(|&i| {
            let t = &self.manifest.tensors[i];
            t.offset + t.size <= offset
        });
        for &i in &self.tensors[first..] {
            let t = &self.manifest.tensors[i];
            if t.offset >= end {
                break;
            }
            let slice = |from: u64, len: u64| {
                &bytes[(from - offset) as usize..(from - offset + len) as usize]
            };
            if t.offset >= offset && t.offset + t.size <= end {
                self.manifest
                    .verify_tensor(&t.name, slice(t.offset, t.size))?;
                continue;
            }
            let Some(slabs) = &t.experts else { continue };
            for e in 0..slabs.count {
                let s = t.offset + e * slabs.slab_size;
                if s >= offset && s + slabs.slab_size <= end {
                    self.manifest
                        .verify_expert(&t.name, e, slice(s, slabs.slab_size))?;
                }
            }
        }
        Ok(())
    }
}

impl ByteSource for VerifyingSource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>> {
        Box::pin(async move {
            let bytes = self.inner.read_at(offset, len).await?;
            self.checked(offset, bytes).await
        })
    }

    fn read_many<'a>(
        &'a self,
        ranges: &'a [(u64, usize)],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let all = self.inner.read_many(ranges).await?;
            let mut out = Vec::with_capacity(all.len());
            for (&(offset, _), bytes) in ranges.iter().zip(all) {
                out.push(self.checked(offset, bytes).await?);
            }
            Ok(out)
        })
    }
}

impl VerifyingSource {
    /// Verifies `bytes` read at `offset`; on a mismatch reads them once more (corruption in
    /// transit is usually transient) and fails if the second copy does not verify either.
    async fn checked(&self, offset: u64, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if self.verify_range(offset, &bytes).is_ok() {
            return Ok(bytes);
        }
        let again = self.inner.read_at(offset, bytes.len()).await?;
        self.verify_range(offset, &again)?;
        Ok(again)
    }
}

/// Wraps every source another opener returns in a [`VerifyingSource`].
pub struct VerifyingOpener<'o> {
    pub inner: &'o dyn SourceOpener,
    pub manifest: Arc<Manifest>,
}

impl SourceOpener for VerifyingOpener<'_> {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
        Box::pin(async move {
            let inner = self.inner.open(path).await?;
            Ok(
                Arc::new(VerifyingSource::new(inner, Arc::clone(&self.manifest))?)
                    as Arc<dyn ByteSource>,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names() {
        assert_eq!(
            manifest_path_for("/d/m.gguf").as_deref(),
            Some("/d/m.manifest.json")
        );
        assert_eq!(
            manifest_path_for("http://h/x/m-00002-of-00003.gguf?sig=1").as_deref(),
            Some("http://h/x/m.manifest.json")
        );
        assert_eq!(manifest_path_for("/d/m.bin"), None);
        assert_eq!(
            file_name_of("http://h/x/m-00002-of-00003.gguf?sig=1"),
            "m-00002-of-00003.gguf"
        );
    }
}
