//! Locating reference files outside the repository (the pinned llama.cpp sdist, caches) and
//! reading GGUF metadata from them.
//!
//! Tests that need these files fail with a message saying how to create them; they never skip.

use sluice_core::gguf::{parse_header, Metadata, Parsed};
use std::path::{Path, PathBuf};

/// The cache root shared with `tests/reference/llama-cpp.sh`.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("SLUICE_REF_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice-ref")
        }
    }
}

/// The llama.cpp tree vendored in the pinned llama-cpp-python sdist.
///
/// Panics with instructions when `tests/reference/llama-cpp.sh --src` has not been run.
pub fn llama_cpp_src() -> PathBuf {
    let dir =
        cache_root().join("llama-cpp-python-0.3.36/src/llama_cpp_python-0.3.36/vendor/llama.cpp");
    assert!(
        dir.join("models").is_dir(),
        "the llama.cpp reference tree is missing at {}; run `tests/reference/llama-cpp.sh --src` first",
        dir.display()
    );
    dir
}

/// Metadata of a GGUF file read whole from disk.
pub fn read_gguf_metadata(path: &Path) -> Metadata {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.display().to_string();
    match parse_header(&name, &bytes, bytes.len() as u64) {
        Ok(Parsed::Done(header)) => header.metadata,
        Ok(Parsed::NeedMore(n)) => panic!("{name}: truncated GGUF header (needs {n} bytes)"),
        Err(e) => panic!("{e}"),
    }
}
