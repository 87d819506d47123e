//! Mapping request paths to files under a served directory, refusing everything outside it.
//!
//! The rules, applied to the path once percent-decoded (decoding happens exactly once, so a
//! double-encoded `%252e` is just a strange file name):
//! * it must be UTF-8 without NUL or backslash, and no segment may be `.`, `..`, or contain
//!   `:` (drive letters, alternate streams) → 403;
//! * segments starting with `.` (dotfiles such as `.git`) are hidden → 404;
//! * the joined path is canonicalized (resolving symlinks) and must still lie inside the
//!   canonical root → otherwise 403. Symlinks within the root work; ones leaving it do not.

use super::message::http_date;
use super::url::percent_decode;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Why a path was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed percent-encoding (400).
    BadRequest,
    /// Points outside the root or uses forbidden syntax (403).
    Forbidden,
    /// Does not exist, is hidden, or is not a regular file (404).
    NotFound,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
        }
    }
}

/// A directory served at the URL root.
#[derive(Clone, Debug)]
pub struct Mount {
    /// Canonical path of the directory.
    pub root: PathBuf,
    /// Serve `index.html` for a directory path (the web demo mount), else 404.
    pub index_files: bool,
}

impl Mount {
    pub fn new(dir: &Path, index_files: bool) -> std::io::Result<Mount> {
        let root = std::fs::canonicalize(dir)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Mount { root, index_files })
    }

    /// Resolves the raw (still percent-encoded) path of a request target.
    pub fn resolve(&self, raw_path: &str) -> Result<PathBuf, Refusal> {
        let segments = safe_segments(raw_path)?;
        let mut candidate = self.root.clone();
        for s in &segments {
            candidate.push(s);
        }
        let canonical = std::fs::canonicalize(&candidate).map_err(|_| Refusal::NotFound)?;
        if !canonical.starts_with(&self.root) {
            return Err(Refusal::Forbidden);
        }
        if canonical.is_dir() {
            if !self.index_files {
                return Err(Refusal::NotFound);
            }
            let index = std::fs::canonicalize(canonical.join("index.html"))
                .map_err(|_| Refusal::NotFound)?;
            if !index.starts_with(&self.root) {
                return Err(Refusal::Forbidden);
            }
            return regular_file(index);
        }
        regular_file(canonical)
    }
}

fn regular_file(path: PathBuf) -> Result<PathBuf, Refusal> {
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        _ => Err(Refusal::NotFound),
    }
}

/// The decoded, checked segments of a request path.
pub fn safe_segments(raw_path: &str) -> Result<Vec<String>, Refusal> {
    if raw_path.contains('\\') {
        return Err(Refusal::Forbidden);
    }
    let decoded = percent_decode(raw_path).ok_or(Refusal::BadRequest)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Refusal::NotFound)?;
    if decoded.contains(['\0', '\\']) {
        return Err(Refusal::Forbidden);
    }
    let mut segments = Vec::new();
    for s in decoded.split('/') {
        match s {
            "" => continue,
            "." | ".." => return Err(Refusal::Forbidden),
            s if s.contains(':') => return Err(Refusal::Forbidden),
            s if s.starts_with('.') => return Err(Refusal::NotFound),
            s => segments.push(s.to_string()),
        }
    }
    Ok(segments)
}

/// An open file with the validators the server sends for it.
pub struct ServedFile {
    pub file: File,
    pub len: u64,
    /// Strong entity tag derived from length and modification time.
    pub etag: String,
    /// IMF-fixdate of the modification time.
    pub last_modified: String,
    pub content_type: &'static str,
}

impl ServedFile {
    pub fn open(path: &Path) -> std::io::Result<ServedFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let (etag, last_modified) = validators(&meta);
        Ok(ServedFile {
            len: meta.len(),
            file,
            etag,
            last_modified,
            content_type: content_type(path),
        })
    }
}

/// `(ETag, Last-Modified)` for a file's metadata.
pub fn validators(meta: &Metadata) -> (String, String) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    (
        format!("\"{:x}-{:x}\"", meta.len(), mtime.as_nanos()),
        http_date(mtime.as_secs()),
    )
}

/// `Content-Type` by file extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_rules() {
        assert_eq!(safe_segments("/a/b.gguf").unwrap(), vec!["a", "b.gguf"]);
        assert_eq!(safe_segments("//a//b").unwrap(), vec!["a", "b"]);
        assert_eq!(safe_segments("/a%20b").unwrap(), vec!["a b"]);
        assert_eq!(safe_segments("/%252e%252e/x").unwrap(), vec!["%2e%2e", "x"]);
        for bad in [
            "/../x",
            "/a/%2e%2e/x",
            "/%2E%2E%2Fetc",
            "/a\\b",
            "/a%5cb",
            "/c:/x",
            "/a/./b",
            "/%00",
        ] {
            assert_eq!(safe_segments(bad), Err(Refusal::Forbidden), "{bad}");
        }
        assert_eq!(safe_segments("/.git/config"), Err(Refusal::NotFound));
        assert_eq!(safe_segments("/%zz"), Err(Refusal::BadRequest));
    }
}
