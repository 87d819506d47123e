//! Acceptance test of `sluice info`: on files made by llama.cpp's own tools (F32 from gguf-py,
//! llama-quantize outputs of many types, a --tensor-type mix, a 4-part llama-gguf-split), the
//! JSON report lists the same tensors (names, types, shapes in ne order), GGUF version and
//! metadata keys and types as gguf-py's `gguf_dump.py --json` (golden files made by
//! `tests/gen/info_models.py`).

use serde_json::Value as J;
use sluice_native::cmd::info::{report_json, report_text};
use sluice_native::open::{open_model, LocalAccess};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fixture(name: &str) -> PathBuf {
    sluice_tests::fixtures_dir().join("gguf").join(name)
}

fn golden(stem: &str) -> J {
    let path = fixture(&format!("golden/{stem}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/gen/info_models.py)", path.display()));
    serde_json::from_str(&text).expect("golden file is JSON")
}

/// `sluice info --json` of the model that `path` belongs to, parsed.
fn info(path: &Path) -> J {
    let p = path.to_str().expect("utf-8 path");
    let model = open_model(p, LocalAccess::Mmap).expect("fixture opens");
    // Through text, as `--json` prints it.
    serde_json::from_str(&report_json(p, &model, false, true).to_string())
        .expect("report is valid JSON")
}

type TensorRow = (String, String, Vec<u64>);

fn dims(v: &J) -> Vec<u64> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim"))
        .collect()
}

/// (name, type, shape) of every tensor, as the golden files list them.
fn golden_tensors(g: &J) -> Vec<TensorRow> {
    g["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            (
                t[0].as_str().expect("name").to_string(),
                t[1].as_str().expect("type").to_string(),
                dims(&t[2]),
            )
        })
        .collect()
}

fn our_tensors(report: &J) -> Vec<TensorRow> {
    report["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_string(),
                t["type"].as_str().expect("type").to_string(),
                dims(&t["shape"]),
            )
        })
        .collect()
}

/// Metadata keys with gguf-py's type names (`["key", "ARRAY", "STRING"]` for arrays).
fn our_metadata(report: &J) -> Vec<Vec<String>> {
    report["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .map(|m| {
            let mut row = vec![
                m["key"].as_str().expect("key").to_string(),
                m["type"].as_str().expect("type").to_uppercase(),
            ];
            if let Some(t) = m["array_type"].as_str() {
                row.push(t.to_uppercase());
            }
            row
        })
        .collect()
}

fn golden_metadata(g: &J) -> Vec<Vec<String>> {
    g["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .collect()
}

const SINGLE_FILES: [&str; 11] = [
    "tiny-F32",
    "tiny-Q8_0",
    "tiny-Q4_K_M",
    "tiny-Q2_K",
    "tiny-IQ1_S",
    "tiny-IQ1_M",
    "tiny-IQ2_XXS",
    "tiny-IQ3_XXS",
    "tiny-IQ4_XS",
    "tiny-mix",
    "tiny-Q4_K_M-merged",
];

#[test]
fn single_files_match_gguf_dump() {
    for stem in SINGLE_FILES {
        let g = golden(stem);
        let report = info(&fixture(&format!("{stem}.gguf")));
        let want = golden_tensors(&g);
        assert_eq!(
            report["n_tensors"].as_u64(),
            Some(want.len() as u64),
            "{stem}"
        );
        assert_eq!(our_tensors(&report), want, "{stem}: tensors");
        assert_eq!(
            our_metadata(&report),
            golden_metadata(&g),
            "{stem}: metadata"
        );
        assert_eq!(report["version"], g["version"], "{stem}: version");
        assert_eq!(report["architecture"], "llama");
        assert_eq!(report["name"], "sluice tiny info model");
        // The per-type table adds up to the total.
        let types = report["types"].as_array().expect("types");
        let sum: u64 = types
            .iter()
            .map(|t| t["bytes"].as_u64().expect("bytes"))
            .sum();
        assert_eq!(report["total"]["bytes"].as_u64(), Some(sum), "{stem}");
        let n: u64 = types
            .iter()
            .map(|t| t["tensors"].as_u64().expect("n"))
            .sum();
        assert_eq!(n, want.len() as u64);
    }
}

#[test]
fn every_requested_quant_type_is_present() {
    for (stem, ty) in [
        ("tiny-Q8_0", "Q8_0"),
        ("tiny-Q4_K_M", "Q4_K"),
        ("tiny-Q2_K", "Q2_K"),
        ("tiny-IQ1_S", "IQ1_S"),
        ("tiny-IQ1_M", "IQ1_M"),
        ("tiny-IQ2_XXS", "IQ2_XXS"),
        ("tiny-IQ3_XXS", "IQ3_XXS"),
        ("tiny-IQ4_XS", "IQ4_XS"),
        ("tiny-mix", "Q5_1"),
    ] {
        let report = info(&fixture(&format!("{stem}.gguf")));
        let has = our_tensors(&report).iter().any(|(_, t, _)| t == ty);
        assert!(has, "{stem} has no {ty} tensor");
    }
}

#[test]
fn any_part_of_the_split_shows_the_whole_model() {
    let parts: Vec<J> = (1..=4)
        .map(|i| golden(&format!("tiny-Q4_K_M-{i:05}-of-00004")))
        .collect();
    let mut want = Vec::new();
    let mut want_parts = Vec::new();
    for (i, g) in parts.iter().enumerate() {
        for t in golden_tensors(g) {
            want.push(t);
            want_parts.push(i as u64 + 1);
        }
    }
    for i in 1..=4 {
        let start = Instant::now();
        let report = info(&fixture(&format!("tiny-Q4_K_M-{i:05}-of-00004.gguf")));
        assert!(
            start.elapsed().as_secs_f64() < 1.0,
            "info took {:?}",
            start.elapsed()
        );
        assert_eq!(our_tensors(&report), want, "opened from part {i}");
        let got_parts: Vec<u64> = report["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .map(|t| t["part"].as_u64().expect("part"))
            .collect();
        assert_eq!(got_parts, want_parts);
        assert_eq!(report["parts"].as_array().map(Vec::len), Some(4));
        // Metadata comes from the first part, as llama.cpp reads it.
        assert_eq!(our_metadata(&report), golden_metadata(&parts[0]));
    }
    // The split holds the same tensors as the file it was made from.
    assert_eq!(want, golden_tensors(&golden("tiny-Q4_K_M")));
}

#[test]
fn text_report_lists_types_and_abbreviates_arrays() {
    let path = fixture("tiny-Q4_K_M-00002-of-00004.gguf");
    let p = path.to_str().expect("utf-8");
    let model = open_model(p, LocalAccess::Read).expect("opens");
    let text = report_text(p, &model, false, true);
    assert!(text.contains("parts: 4"), "{text}");
    assert!(text.contains("architecture: llama"));
    assert!(text.contains("tokenizer.ggml.tokens"));
    assert!(
        text.contains(r#"["<unk>", "<s>", "</s>", "▁", "a", "b", ...]"#),
        "{text}"
    );
    assert!(text.contains("blk.0.ffn_down.weight"));
    assert!(text.contains("per type:"));
    let full = report_text(p, &model, true, false);
    assert!(full.contains(r#""▁the""#) && !full.contains("blk.0.ffn_down.weight"));
}
