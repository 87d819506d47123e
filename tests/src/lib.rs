//! Shared helpers for sluice's integration tests: fixture paths and golden-file readers.

pub mod gpu_diff;
pub mod gpu_parity;

use std::path::PathBuf;

pub mod quant_fixture;

/// The directory of committed fixtures (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The repository root (paths in golden files are relative to it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub mod gguf_build;
pub mod parity;
pub mod reference;
