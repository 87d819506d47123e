//! GGUF files written by other tools survive a trip through sluice byte for byte:
//!
//! * parsing a file ggml or gguf-py wrote and writing it back reproduces it exactly;
//! * `sluice gguf split` makes the same parts as `llama-gguf-split` (committed fixtures made by
//!   `tests/gen/info_models.py`), and `sluice gguf merge` the same merged file;
//! * with `--split-max-size`, the parts hash like llama-gguf-split's (golden
//!   `split-max-size.json` from `tests/gen/split_size_golden.py`);
//! * merge(split(x)) == x, and outputs are never overwritten.

use sluice_core::gguf::{read_header, GgufWriter, TensorInfo};
use sluice_core::source::{block_on, MemorySource};
use sluice_core::Error;
use sluice_native::cmd::gguf::{run, Args, MergeArgs, Op, SplitArgs};
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    sluice_tests::fixtures_dir().join("gguf").join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-gguf-files-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

fn split(input: &Path, prefix: &Path, max_tensors: u64) -> Result<(), String> {
    run(Args {
        op: Op::Split(SplitArgs {
            input: s(input),
            output_prefix: s(prefix),
            split_max_tensors: Some(max_tensors),
            split_max_size: None,
            no_tensor_first_split: false,
            dry_run: false,
        }),
    })
    .map_err(|e| format!("{e:#}"))
}

fn merge(input: &Path, output: &Path, drop_split_keys: bool) -> Result<(), String> {
    run(Args {
        op: Op::Merge(MergeArgs {
            input: s(input),
            output: s(output),
            drop_split_keys,
            dry_run: false,
        }),
    })
    .map_err(|e| format!("{e:#}"))
}

#[test]
fn writing_a_parsed_file_reproduces_it() {
    let dir = sluice_tests::fixtures_dir().join("gguf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            continue;
        }
        let bytes = read(&path);
        let source = MemorySource::from_vec(s(&path), bytes.clone());
        let header = block_on(read_header(&source)).expect("fixture parses");
        let writer = GgufWriter::from_header(&header).expect("writable");
        let data_offset = header.data_offset as usize;
        let mut copy = |i: usize, t: &TensorInfo, out: &mut dyn Write| -> sluice_core::Result<()> {
            let src = &header.tensors[i];
            assert_eq!(src.name, t.name);
            let start = data_offset + src.offset as usize;
            let n = t.nbytes().expect("known type") as usize;
            out.write_all(&bytes[start..start + n])
                .map_err(|e| Error::io("mem", e.to_string()))
        };
        let again = writer.to_vec(&mut copy).expect("writes");
        assert!(again == bytes, "{} changed on rewrite", path.display());
        checked += 1;
    }
    assert_eq!(checked, 15, "expected the 15 generated fixtures");
}

#[test]
fn split_and_merge_match_llama_gguf_split() {
    let dir = scratch("split-merge");
    split(&fixture("tiny-Q4_K_M.gguf"), &dir.join("ours"), 3).expect("split");
    for i in 1..=4 {
        let name = format!("-{i:05}-of-00004.gguf");
        let ours = read(&dir.join(format!("ours{name}")));
        let theirs = read(&fixture(&format!("tiny-Q4_K_M{name}")));
        assert!(ours == theirs, "part {i} differs from llama-gguf-split's");
    }
    // Merge from the third part (llama-gguf-split needs the first; any part works here).
    merge(
        &dir.join("ours-00003-of-00004.gguf"),
        &dir.join("merged.gguf"),
        false,
    )
    .expect("merge");
    assert!(read(&dir.join("merged.gguf")) == read(&fixture("tiny-Q4_K_M-merged.gguf")));
    // Splitting llama's merged file gives llama's parts again.
    split(&fixture("tiny-Q4_K_M-merged.gguf"), &dir.join("again"), 3).expect("split");
    for i in 1..=4 {
        let name = format!("-{i:05}-of-00004.gguf");
        assert!(
            read(&dir.join(format!("again{name}")))
                == read(&fixture(&format!("tiny-Q4_K_M{name}")))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn split_by_size_matches_llama_gguf_split() {
    use sha2::{Digest, Sha256};
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("../golden/split-max-size.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(golden["split_max_size"], "1M");
    let dir = scratch("split-size");
    let model = sluice_tests::repo_root().join(golden["model"].as_str().unwrap());
    run(Args {
        op: Op::Split(SplitArgs {
            input: s(&model),
            output_prefix: s(&dir.join("ours")),
            split_max_tensors: None,
            split_max_size: Some(1_000_000),
            no_tensor_first_split: false,
            dry_run: false,
        }),
    })
    .expect("split");
    let parts = golden["parts"].as_array().unwrap();
    assert!(parts.len() > 1, "the golden must be split");
    for p in parts {
        let suffix = p["suffix"].as_str().unwrap();
        let ours = read(&dir.join(format!("ours{suffix}")));
        assert_eq!(
            ours.len() as u64,
            p["bytes"].as_u64().unwrap(),
            "{suffix}: size"
        );
        let hash: String = Sha256::digest(&ours)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hash,
            p["sha256"].as_str().unwrap(),
            "{suffix} differs from llama-gguf-split's"
        );
    }
    assert!(!dir
        .join(format!(
            "ours-{:05}-of-{:05}.gguf",
            parts.len() + 1,
            parts.len()
        ))
        .exists());
    merge(
        &dir.join(format!("ours{}", parts[0]["suffix"].as_str().unwrap())),
        &dir.join("merged.gguf"),
        true,
    )
    .expect("merge");
    assert!(
        read(&dir.join("merged.gguf")) == read(&model),
        "merge(split(x)) != x"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merge_of_split_is_the_original() {
    let dir = scratch("roundtrip");
    for (stem, per_part) in [("tiny-F32", 5), ("tiny-IQ1_S", 1), ("tiny-mix", 100)] {
        let original = fixture(&format!("{stem}.gguf"));
        let prefix = dir.join(stem);
        split(&original, &prefix, per_part).expect("split");
        let n = 12u32.div_ceil(per_part as u32);
        let last = dir.join(format!("{stem}-{n:05}-of-{n:05}.gguf"));
        let merged = dir.join(format!("{stem}-merged.gguf"));
        merge(&last, &merged, true).expect("merge");
        assert!(
            read(&merged) == read(&original),
            "{stem}: merge(split(x)) != x"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outputs_are_never_overwritten() {
    let dir = scratch("no-overwrite");
    let out = dir.join("taken.gguf");
    std::fs::write(&out, b"precious").expect("write");
    let e = merge(&fixture("tiny-Q4_K_M-00001-of-00004.gguf"), &out, false).unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(read(&out), b"precious");

    // One existing part blocks the whole split, and nothing is written.
    std::fs::write(dir.join("p-00003-of-00004.gguf"), b"precious").expect("write");
    let e = split(&fixture("tiny-Q4_K_M.gguf"), &dir.join("p"), 3).unwrap_err();
    assert!(e.contains("p-00003-of-00004.gguf"), "{e}");
    assert!(!dir.join("p-00001-of-00004.gguf").exists());
    assert_eq!(read(&dir.join("p-00003-of-00004.gguf")), b"precious");

    // Merging something that is not split is refused, as llama-gguf-split does.
    let e = merge(&fixture("tiny-F32.gguf"), &dir.join("m.gguf"), false).unwrap_err();
    assert!(e.contains("not a split model"), "{e}");
    assert!(!dir.join("m.gguf").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
