//! Opening local model files as byte sources.
//!
//! The default maps each file into memory, so tensors are used in place and the OS page
//! cache decides what stays resident. `--no-mmap` reads with positioned reads instead (for
//! filesystems where mapping is slow, and for expert streaming that bypasses the page cache).

use sluice_core::gguf::{GgufModel, SourceOpener};
use sluice_core::source::{check_range, ByteSource, LocalBoxFuture, MemorySource};
use sluice_core::{Error, Result};
use std::fs::File;
use std::sync::Arc;

/// How local files are turned into byte sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocalAccess {
    /// Memory-map the file (default).
    #[default]
    Mmap,
    /// Positioned reads, no mapping.
    Read,
}

/// Opens local paths.
#[derive(Default)]
pub struct LocalOpener {
    pub access: LocalAccess,
}

impl SourceOpener for LocalOpener {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
        let result = open_local(path, self.access);
        Box::pin(std::future::ready(result))
    }
}

/// Opens one local file as a source.
pub fn open_local(path: &str, access: LocalAccess) -> Result<Arc<dyn ByteSource>> {
    let file = File::open(path).map_err(|e| Error::io(path, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::io(path, "not a regular file"));
    }
    match access {
        LocalAccess::Mmap if meta.len() > 0 => {
            // SAFETY: the map is read-only; a file truncated by another process while mapped
            // would fault, which is the same contract every mmap-based loader (llama.cpp
            // included) accepts.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| Error::io(path, format!("cannot map: {e}")))?;
            Ok(Arc::new(MemorySource::new(path, Arc::new(map))))
        }
        _ => Ok(Arc::new(FileSource {
            name: path.to_string(),
            len: meta.len(),
            file,
        })),
    }
}

/// A file read with positioned reads.
pub struct FileSource {
    name: String,
    len: u64,
    file: File,
}

impl ByteSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>> {
        let result = check_range(&self.name, self.len, offset, len).and_then(|()| {
            let mut buf = vec![0u8; len];
            read_exact_at(&self.file, &mut buf, offset).map_err(|e| {
                Error::io(&self.name, format!("read of {len} bytes at {offset}: {e}"))
            })?;
            Ok(buf)
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Opens a local model (any part of a split) with the default access.
pub fn open_model(path: &str, access: LocalAccess) -> Result<GgufModel> {
    sluice_core::source::block_on(GgufModel::open(path, &LocalOpener { access }))
}

/// Whether a sidecar integrity manifest is used when opening a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Verify remote (HTTP) models when a manifest sits next to them; local files are used
    /// as they are (verifying a memory map would mean copying it).
    #[default]
    Auto,
    /// Never read a manifest.
    Off,
    /// A manifest must exist and every source is verified (local maps lose in-place use).
    Required,
}

/// How [`open_model_with`] reaches a model given by path or URL.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub access: LocalAccess,
    pub http: crate::http::HttpConfig,
    pub verify: Verify,
}

/// Opens local paths and `http://` URLs alike.
#[derive(Default)]
pub struct AnyOpener {
    pub local: LocalOpener,
    pub http: crate::http::HttpOpener,
}

impl SourceOpener for AnyOpener {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
        if crate::http::is_http_url(path) {
            self.http.open(path)
        } else {
            self.local.open(path)
        }
    }
}

/// A model and the manifest its reads are verified against, if any.
pub struct OpenedModel {
    pub model: GgufModel,
    pub manifest: Option<Arc<crate::manifest::Manifest>>,
}

/// Opens a model from a local path or an `http://` URL (any part of a split), verifying it
/// against its sidecar manifest as `options.verify` says.
pub fn open_model_with(path: &str, options: &OpenOptions) -> Result<OpenedModel> {
    use crate::manifest::{load_local_sidecar, manifest_path_for, Manifest, VerifyingOpener};
    let remote = crate::http::is_http_url(path);
    let manifest = match options.verify {
        Verify::Off => None,
        Verify::Auto if !remote => None,
        _ if remote => match manifest_path_for(path) {
            Some(url) => crate::http::fetch_document(&url, 1 << 28, &options.http)?
                .map(|bytes| Manifest::parse(&url, &bytes))
                .transpose()?,
            None => None,
        },
        _ => load_local_sidecar(path)?,
    };
    if options.verify == Verify::Required && manifest.is_none() {
        return Err(Error::model(format!(
            "{path}: no integrity manifest found (expected {})",
            manifest_path_for(path).unwrap_or_else(|| "<model>.manifest.json".into())
        )));
    }
    let opener = AnyOpener {
        local: LocalOpener {
            access: options.access,
        },
        http: crate::http::HttpOpener {
            config: options.http.clone(),
        },
    };
    let manifest = manifest.map(Arc::new);
    let model = match &manifest {
        Some(m) => {
            let verifying = VerifyingOpener {
                inner: &opener,
                manifest: Arc::clone(m),
            };
            let model = sluice_core::source::block_on(GgufModel::open(path, &verifying))?;
            m.check_against(&model)?;
            model
        }
        None => sluice_core::source::block_on(GgufModel::open(path, &opener))?,
    };
    Ok(OpenedModel { model, manifest })
}

/// Opens a model from a local path or URL with default options.
pub fn open_model_any(path: &str) -> Result<GgufModel> {
    open_model_with(path, &OpenOptions::default()).map(|o| o.model)
}
