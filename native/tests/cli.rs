//! The `sluice` binary as a process: output on stdout, `error: ...` on stderr with a non-zero
//! exit status for bad input, never a panic.

use sluice_native::cmd::info::report_json;
use sluice_native::open::{open_model, LocalAccess};
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gguf")
        .join(name)
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("sluice runs")
}

fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn info_json_is_the_report() {
    let path = fixture("tiny-Q4_K_M-00003-of-00004.gguf");
    let p = path.to_str().expect("utf-8");
    let out = sluice(&["info", "--json", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = open_model(p, LocalAccess::Mmap).expect("opens");
    let want = report_json(p, &model, false, true).to_json_string() + "\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn bad_input_is_an_error_not_a_crash() {
    assert_clean_error(
        &sluice(&["info", "/nonexistent/x.gguf"]),
        "/nonexistent/x.gguf",
    );

    let dir = std::env::temp_dir().join(format!("sluice-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let bytes = std::fs::read(fixture("tiny-Q2_K.gguf")).expect("fixture");
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let cut = cut.to_str().expect("utf-8");
    assert_clean_error(&sluice(&["info", cut]), "at byte offset");
    assert_clean_error(&sluice(&["gguf", "split", cut, "x"]), "at byte offset");

    // A missing part of a split model is named.
    for i in [1, 2, 4] {
        let name = format!("m-{i:05}-of-00004.gguf");
        let src = fixture(&format!("tiny-Q4_K_M-{i:05}-of-00004.gguf"));
        std::fs::copy(src, dir.join(&name)).expect("copy");
    }
    let part = dir.join("m-00001-of-00004.gguf");
    assert_clean_error(
        &sluice(&["info", part.to_str().expect("utf-8")]),
        "m-00003-of-00004.gguf",
    );

    // Merge never overwrites.
    let merged = fixture("tiny-Q4_K_M-merged.gguf");
    let first = fixture("tiny-Q4_K_M-00001-of-00004.gguf");
    let out = sluice(&[
        "gguf",
        "merge",
        first.to_str().expect("utf-8"),
        merged.to_str().expect("utf-8"),
    ]);
    assert_clean_error(&out, "already exists");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_are_usage_errors() {
    let model = fixture("tiny-F32.gguf");
    let m = model.to_str().expect("utf-8");
    for args in [
        vec!["gguf", "split", "--split-max-size", "1.5G", m, "x"],
        vec!["gguf", "split", "--split-max-size", "10K", m, "x"],
        vec![
            "gguf",
            "split",
            "--split-max-size",
            "1G",
            "--split-max-tensors",
            "3",
            m,
            "x",
        ],
        vec!["info"],
    ] {
        let out = sluice(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}
