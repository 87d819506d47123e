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
    let mut want = report_json(p, &model, false, true);
    want["integrity_manifest"] = false.into();
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(got, want);
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

/// A file whose second tensor has a type id newer than sluice (200): `info` shows it with an
/// unknown size, `split` refuses it by name.
#[test]
fn newer_tensor_types_show_in_info_and_stop_split() {
    use sluice_core::gguf::{GgufWriter, Metadata, TensorInfo};
    use sluice_core::quant::GgmlType;
    let mut w = GgufWriter::new(Metadata::new()).expect("writer");
    w.add_tensor("a", GgmlType::F32, &[8]).expect("a");
    w.add_tensor("b", GgmlType::F32, &[8]).expect("b");
    let mut zeros = |_: usize, t: &TensorInfo, out: &mut dyn std::io::Write| {
        let n = t.nbytes().expect("known") as usize;
        out.write_all(&vec![0; n])
            .map_err(|e| sluice_core::Error::io("mem", e.to_string()))
    };
    let mut bytes = w.to_vec(&mut zeros).expect("bytes");
    // Record of "b": name length (8) + "b" + n_dims (4) + ne[0] (8), then the type.
    let record = bytes
        .windows(9)
        .position(|win| win == b"\x01\0\0\0\0\0\0\0b")
        .expect("record of b");
    let type_at = record + 9 + 4 + 8;
    bytes[type_at..type_at + 4].copy_from_slice(&200u32.to_le_bytes());

    let dir = std::env::temp_dir().join(format!("sluice-cli-new-type-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let path = dir.join("new-type.gguf");
    std::fs::write(&path, &bytes).expect("write");
    let p = path.to_str().expect("utf-8");

    let out = sluice(&["info", "--json", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let b = &json["tensors"][1];
    assert_eq!(b["name"], "b");
    assert_eq!(b["type"], "type#200");
    assert_eq!(b["type_id"], 200);
    assert!(
        b["bytes"].is_null() && json["total"]["bytes"].is_null(),
        "{json}"
    );
    let text = sluice(&["info", p]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("type#200"));

    let prefix = dir.join("split");
    assert_clean_error(
        &sluice(&["gguf", "split", p, prefix.to_str().expect("utf-8")]),
        "tensor b has type type#200",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn print_token_ids_is_one_json_line() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/tiny-deepseek-v3.gguf");
    let prompt = "<｜User｜>Hi<｜Assistant｜>";
    let out = sluice(&[
        "run",
        "-m",
        model.to_str().expect("utf-8"),
        "-no-cnv",
        "--temp",
        "0",
        "-n",
        "5",
        "-p",
        prompt,
        "--print-token-ids",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("{\"prompt_token_ids\""))
        .unwrap_or_else(|| panic!("no token id line in {stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
    let prompt_ids = v["prompt_token_ids"].as_array().expect("prompt ids");
    // BOS, <｜User｜>, "Hi" (one or more tokens), <｜Assistant｜>.
    assert_eq!(prompt_ids.first(), Some(&serde_json::json!(0)));
    assert!(prompt_ids.len() >= 4, "{line}");
    assert_eq!(v["token_ids"].as_array().expect("ids").len(), 5, "{line}");
}

#[test]
fn serve_www_without_a_value_serves_the_demo_page() {
    use std::io::{BufRead, BufReader, Read, Write};
    let models = std::env::temp_dir().join(format!("sluice-www-{}", std::process::id()));
    std::fs::create_dir_all(&models).expect("scratch");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            models.to_str().expect("utf-8"),
            "--port",
            "0",
            "--www",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sluice serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let second = lines.next().expect("a second line").expect("utf-8");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL")
        .trim_end_matches('/')
        .to_string();
    assert!(
        second.contains("demo page") && second.contains(&url),
        "{second}"
    );
    let get = |path: &str| -> String {
        let host = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(host).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("read");
        response
    };
    let index = get("/");
    let script = get("/app.js");
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&models).ok();
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("<title>sluice"), "{index}");
    assert!(script.contains("text/javascript"), "{script}");
    assert!(script.contains("Session.load"), "the demo's script");
}

#[test]
fn bad_placement_flags_are_named() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/tiny-deepseek-v3.gguf");
    let m = model.to_str().expect("utf-8");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-m", m, "-no-cnv", "-n", "2", "-p", "hi"];
        args.extend_from_slice(extra);
        sluice(&args)
    };
    assert_clean_error(&run(&["-ngl", "x"]), "--n-gpu-layers x");
    assert_clean_error(&run(&["-ot", "exps"]), "--override-tensor exps");
    assert_clean_error(&run(&["-ot", "exps=TPU"]), "unknown device");
    assert_clean_error(&run(&["-ot", "(=CPU"]), "not a valid regex");
    // A named adapter that does not exist is an error (not a silent CPU run), unless no GPU
    // layer was asked for.
    assert_clean_error(
        &run(&["-ngl", "99", "--device", "no-such-adapter"]),
        "--device no-such-adapter",
    );
    let cpu = run(&["--device", "no-such-adapter"]);
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
}
