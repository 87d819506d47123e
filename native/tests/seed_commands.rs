//! The llama-cli commands from the DeepSeek-V3 guides, with `./llama.cpp/llama-cli` replaced
//! by `sluice run` and the model path by the bundled fixture: they run to completion, and
//! with `--temp 0` print exactly what llama.cpp's `llama-completion` prints for the same flags
//! (golden: tests/fixtures/golden/seed-commands.json, made by tests/gen/seed_commands.py).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden() -> Value {
    let path = repo().join("tests/fixtures/golden/seed-commands.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden")).expect("json")
}

fn flags(c: &Value) -> Vec<String> {
    c["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn sluice(model: &str, flags: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(repo())
        .arg("run")
        .args(["--model", model])
        .args(flags)
        .output()
        .expect("run sluice")
}

#[test]
fn greedy_output_equals_llama_completion() {
    let g = golden();
    for c in g["commands"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let out = sluice(c["model"].as_str().unwrap(), &flags(c));
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let want = hex(c["stdout_hex"].as_str().unwrap());
        let n = g["n_predict"].as_u64().unwrap();
        let near = c["steps_before_near_tie"].as_u64().unwrap();
        // The golden generator only accepts commands whose 48 greedy steps have no near-tie
        // in llama.cpp's logits, so the whole output must match.
        assert_eq!(
            near, n,
            "{name}: the golden has a near-tie at step {near}; regenerate it"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "{name}: stdout differs from llama-completion's"
        );
        assert_eq!(
            out.stdout, want,
            "{name}: stdout bytes differ from llama-completion's"
        );
    }
}

#[test]
fn verbatim_commands_run_to_completion() {
    let g = golden();
    for c in g["commands"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        // The guide's flags exactly (the golden's flags with the guide's temperature back),
        // plus a token limit: filling an 8192-token context with random text would only make
        // the test slow; the context-full stop has its own test.
        let mut f = flags(c);
        f.truncate(f.len() - 2);
        let verbatim_temp = if name == "ud-q2_k_xl" { "0.3" } else { "0.6" };
        let t = f.iter().position(|x| x == "--temp").unwrap();
        f[t + 1] = verbatim_temp.to_string();
        f.extend(["-n".to_string(), "200".to_string()]);
        let out = sluice(c["model"].as_str().unwrap(), &f);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: exit {:?}\n{err}", out.status);
        assert!(out.stdout.len() > 100, "{name}: printed almost nothing");
        assert!(
            err.contains("eval time"),
            "{name}: no timing summary on stderr:\n{err}"
        );
        // -ngl 2 of a 2-layer model puts both layers on the GPU and keeps the output on the CPU
        // (llama.cpp's rule); -ngl 59 covers everything: the GPU when there is one (lavapipe
        // in CI), else a note.
        let on_gpu = err
            .lines()
            .any(|l| l.starts_with("sluice: ") && !l.contains(" on cpu"));
        if name == "ud-q2_k_xl" {
            assert!(
                err.contains("placement: layers 0–1 on the GPU, output on the CPU")
                    || err.contains("--n-gpu-layers: no usable GPU"),
                "{name}: -ngl 2 must put both layers on the GPU or say why not:\n{err}"
            );
        } else {
            assert!(
                on_gpu || err.contains("--n-gpu-layers: no usable GPU"),
                "{name}: -ngl 59 must run on the GPU or say why not:\n{err}"
            );
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_full_context_stops_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(repo())
        .args([
            "run",
            "-m",
            "tests/fixtures/models/tiny-deepseek-v3.gguf",
            "-no-cnv",
            "-c",
            "40",
            "--temp",
            "0",
        ])
        .args([
            "-p",
            "<｜User｜>Create a Flappy Bird game in Python.<｜Assistant｜>",
        ])
        .output()
        .expect("run sluice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{err}", out.status);
    assert!(
        err.contains("context is full (40 tokens)"),
        "no clear context-full message:\n{err}"
    );
}
