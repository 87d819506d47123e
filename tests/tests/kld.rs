//! `sluice perplexity --kl-divergence` against llama-perplexity's base-logits files, both ways
//! (golden: tests/fixtures/golden/kld/, from tests/gen/kld_base.py).
//!
//! The flow users follow to compare quants: a base written from the F32 fixture, the IQ1_S
//! fixture measured against it. sluice must read llama.cpp's base and report llama.cpp's KLD
//! (±10 %); the base sluice writes must carry llama.cpp's header and tokens and the same
//! log-probabilities, and llama.cpp (at generation time) reported the same KLD reading it.

use serde_json::Value;
use sluice_native::cmd::perplexity::{base_header, compare, score, BaseFile};
use sluice_tests::repo_root;

fn golden() -> Value {
    let path = repo_root().join("tests/fixtures/golden/kld/kld.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn path(g: &Value, key: &str) -> String {
    repo_root()
        .join(g[key].as_str().unwrap())
        .to_string_lossy()
        .into_owned()
}

fn load(p: &str) -> sluice_native::load::Loaded {
    sluice_native::load::load(p, 2, false).unwrap()
}

/// Mean KLD and same-top fraction of `model` measured against the base file at `base`.
fn measure(model: &str, base: &str) -> (f64, f64) {
    let loaded = load(model);
    let mut base = BaseFile::open(base).unwrap();
    let stats = compare(&loaded, &mut base, &mut |_, _| {}).unwrap();
    (stats.mean_kld().0, stats.same_top_fraction())
}

#[test]
fn sluice_reads_llama_perplexity_base() {
    let g = golden();
    let (kld, same) = measure(&path(&g, "quant_model"), &path(&g, "base_file"));
    let want = g["llama_base"]["mean_kld"].as_f64().unwrap();
    let want_same = g["llama_base"]["same_top_percent"].as_f64().unwrap() / 100.0;
    println!("IQ1_S vs llama.cpp's F32 base: KLD sluice {kld:.6}, llama.cpp {want:.6}; same top {same:.4} vs {want_same:.4}");
    assert!(want > 0.01, "the golden must measure a real difference");
    assert!(
        (kld - want).abs() <= 0.10 * want,
        "KLD {kld:.6} is more than 10 % from llama-perplexity's {want:.6}"
    );
    let positions = (g["chunks"].as_u64().unwrap() * (g["ctx"].as_u64().unwrap() / 2 - 1)) as f64;
    assert!(
        (same - want_same).abs() <= 1.5 / positions,
        "same-top {same:.4} vs llama-perplexity's {want_same:.4}"
    );
    // The base model against its own base: nothing between sluice's F32 logits and llama.cpp's.
    let (self_kld, self_same) = measure(&path(&g, "base_model"), &path(&g, "base_file"));
    println!("F32 vs llama.cpp's F32 base: KLD {self_kld:.3e}, same top {self_same}");
    assert!(
        self_kld < 1e-5,
        "F32 against its own base: KLD {self_kld:e}"
    );
    assert_eq!(self_same, 1.0);
}

#[test]
fn sluice_writes_the_base_llama_perplexity_writes() {
    let g = golden();
    let theirs = std::fs::read(path(&g, "base_file")).unwrap();
    let loaded = load(&path(&g, "base_model"));
    let text = std::fs::read_to_string(path(&g, "text")).unwrap();
    let tokens = loaded.tokenizer.encode(&text, true, true);
    let (n_ctx, n_chunk) = (
        g["ctx"].as_u64().unwrap() as usize,
        g["chunks"].as_u64().unwrap() as usize,
    );
    let header = base_header(&tokens, n_ctx, loaded.model.n_vocab, n_chunk).to_bytes();
    let mut ours = header.clone();
    score(
        &loaded,
        &tokens,
        n_ctx,
        n_chunk,
        Some(&mut ours),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(ours.len(), theirs.len(), "base file size");
    assert_eq!(
        &ours[..header.len()],
        &theirs[..header.len()],
        "header and tokens"
    );
    // Rows: two f32 (scale, min log-prob) and u16 codes. Decoded log-probabilities must agree
    // where they matter (above llama.cpp's −16 cut-off).
    let n_vocab = loaded.model.n_vocab;
    let row = sluice_core::perplexity::row_u16(n_vocab) * 2;
    let (mut worst, mut rows) = (0f32, 0usize);
    for (a, b) in ours[header.len()..]
        .chunks_exact(row)
        .zip(theirs[header.len()..].chunks_exact(row))
    {
        let f = |r: &[u8], i: usize| f32::from_le_bytes(r[4 * i..4 * i + 4].try_into().unwrap());
        let code = |r: &[u8], i: usize| u16::from_le_bytes([r[8 + 2 * i], r[9 + 2 * i]]) as f32;
        for i in 0..n_vocab {
            let (la, lb) = (
                f(a, 0) * code(a, i) + f(a, 1),
                f(b, 0) * code(b, i) + f(b, 1),
            );
            if la > -16.0 || lb > -16.0 {
                worst = worst.max((la - lb).abs());
            }
        }
        rows += 1;
    }
    println!("{rows} rows, largest log-prob difference above −16: {worst:.2e}");
    assert_eq!(rows, n_chunk * (n_ctx - 1 - n_ctx / 2));
    assert!(worst < 1e-2, "log-probs differ by {worst}");
    // What llama-perplexity reported reading a base written by sluice (recorded by the
    // generator, which runs it): the KLD it reports on its own base.
    let theirs_kld = g["llama_base"]["mean_kld"].as_f64().unwrap();
    let read_by_llama = g["sluice_base_read_by_llama"]["mean_kld"].as_f64().unwrap();
    assert!((read_by_llama - theirs_kld).abs() <= 0.10 * theirs_kld);
}
