//! `GET /models.json`: the GGUF models under the served directory.
//!
//! Files are found recursively (hidden entries skipped, directory symlinks not followed,
//! file symlinks only when they stay inside the root). Parts of a split model
//! (`…-00001-of-00003.gguf`) are grouped into one entry. The architecture comes from the first
//! part's `general.architecture`; headers are parsed once per (file, size, mtime).
//!
//! ```json
//! {"models": [{"name": "sub/m", "parts": ["/sub/m-00001-of-00002.gguf", "/sub/m-00002-of-00002.gguf"],
//!              "size": 123456, "architecture": "deepseek2", "complete": true,
//!              "manifest": "/sub/m.manifest.json"}]}
//! ```
//! `parts` are URL paths relative to the server root; `manifest` is `null` when no sidecar
//! exists; `error` is present when the first part's header cannot be read.

use super::url::encode_segment;
use crate::manifest::manifest_path_for;
use crate::open::{open_local, LocalAccess};
use serde::Serialize;
use sluice_core::gguf::split::parse_split_name;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Directory depth searched below the root.
const MAX_DEPTH: usize = 8;

#[derive(Serialize)]
pub struct Listing {
    pub models: Vec<ListedModel>,
}

#[derive(Serialize)]
pub struct ListedModel {
    pub name: String,
    pub parts: Vec<String>,
    pub size: u64,
    pub architecture: Option<String>,
    pub complete: bool,
    pub manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

type HeaderKey = (PathBuf, u64, Option<SystemTime>);

/// Builds listings, remembering each first part's architecture.
#[derive(Default)]
pub struct Lister {
    architectures: Mutex<HashMap<HeaderKey, Result<Option<String>, String>>>,
}

struct Found {
    /// Path relative to the root, `/`-separated.
    rel: String,
    abs: PathBuf,
    size: u64,
}

impl Lister {
    pub fn list(&self, root: &Path) -> Listing {
        let mut found = Vec::new();
        walk(root, root, 0, &mut found);
        // Group: split parts by prefix, single files alone.
        let mut groups: BTreeMap<String, Vec<(u32, u32, Found)>> = BTreeMap::new();
        for f in found {
            match parse_split_name(&f.rel) {
                Some(s) => groups
                    .entry(s.prefix.clone())
                    .or_default()
                    .push((s.number, s.count, f)),
                None => {
                    let name = f.rel.strip_suffix(".gguf").unwrap_or(&f.rel).to_string();
                    groups.entry(name).or_default().push((1, 1, f));
                }
            }
        }
        let models = groups
            .into_iter()
            .map(|(name, mut parts)| {
                parts.sort_by_key(|p| p.0);
                let count = parts.iter().map(|p| p.1).max().unwrap_or(1);
                let complete = parts.len() as u32 == count
                    && parts
                        .iter()
                        .enumerate()
                        .all(|(i, p)| p.0 == i as u32 + 1 && p.1 == count);
                let arch = parts
                    .first()
                    .filter(|p| p.0 == 1)
                    .map(|p| self.architecture(&p.2))
                    .unwrap_or_else(|| Err("part 1 is missing".into()));
                let manifest_rel = parts
                    .first()
                    .and_then(|p| manifest_path_for(&p.2.rel))
                    .filter(|m| root.join(m).is_file())
                    .map(|m| url_path(&m));
                let (architecture, error) = match arch {
                    Ok(a) => (a, None),
                    Err(e) => (None, Some(e)),
                };
                ListedModel {
                    name,
                    size: parts.iter().map(|p| p.2.size).sum(),
                    parts: parts.iter().map(|p| url_path(&p.2.rel)).collect(),
                    architecture,
                    complete,
                    manifest: manifest_rel,
                    error,
                }
            })
            .collect();
        Listing { models }
    }

    fn architecture(&self, f: &Found) -> Result<Option<String>, String> {
        let mtime = std::fs::metadata(&f.abs).and_then(|m| m.modified()).ok();
        let key = (f.abs.clone(), f.size, mtime);
        if let Some(hit) = lock(&self.architectures).get(&key) {
            return hit.clone();
        }
        let result = read_architecture(&f.abs);
        lock(&self.architectures).insert(key, result.clone());
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_architecture(path: &Path) -> Result<Option<String>, String> {
    let text = path.to_string_lossy();
    let source = open_local(&text, LocalAccess::Read).map_err(|e| e.to_string())?;
    let header = sluice_core::source::block_on(sluice_core::gguf::read_header(source.as_ref()))
        .map_err(|e| e.to_string())?;
    Ok(header
        .metadata
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

fn url_path(rel: &str) -> String {
    rel.split('/')
        .map(encode_segment)
        .fold(String::new(), |acc, s| acc + "/" + &s)
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<Found>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, depth + 1, out);
            continue;
        }
        if !name.ends_with(".gguf") {
            continue;
        }
        // Follow file symlinks only when they stay inside the root.
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&real) else {
            continue;
        };
        if !real.starts_with(root) || !meta.is_file() {
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel: Vec<&str> = rel.iter().filter_map(|s| s.to_str()).collect();
        out.push(Found {
            rel: rel.join("/"),
            abs: path,
            size: meta.len(),
        });
    }
}
