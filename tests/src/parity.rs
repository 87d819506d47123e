//! Forward-pass parity against llama.cpp goldens (`tests/fixtures/golden/<model>.json`).
//!
//! For one fixture: teacher-forced logits at every position of the golden sequence compared
//! by KL divergence (llama.cpp ‖ sluice) and by top-1 agreement where llama.cpp's own top-1/
//! top-2 gap is at least 0.1; and greedy continuations compared token by token up to the
//! first near-tie of llama.cpp's logits, for each KV-cache type the golden recorded. The
//! bounds come from the forward-pass issue; the golden's noise floor (llama.cpp with flash
//! attention on vs off) relaxes the KL bound where llama.cpp disagrees with itself more.

use serde_json::Value;
use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use std::path::{Path, PathBuf};

/// Where fixtures live: `SLUICE_FIXTURES` if set, else the committed `tests/fixtures`.
pub fn fixture_root() -> PathBuf {
    std::env::var_os("SLUICE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(crate::fixtures_dir)
}

/// A parsed golden file.
pub struct Golden {
    pub name: String,
    pub json: Value,
    pub model_path: PathBuf,
    pub logits: Vec<f32>,
    pub n_vocab: usize,
}

/// Loads `golden/<name>.json` and its logits; fails with instructions when the model file
/// is missing (float models are regenerated, not committed).
pub fn golden(name: &str) -> Golden {
    let root = fixture_root();
    let path = root.join("golden").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = json["model"]["file"].as_str().expect("model.file");
    // `file` is a repository path (tests/fixtures/...); resolve it against the fixture root.
    let rel = file.strip_prefix("tests/fixtures/").unwrap_or(file);
    let model_path = root.join(rel);
    assert!(
        model_path.exists(),
        "{} is missing: float fixtures are not committed; run `python3 tests/gen/make_fixtures.py --float-only` \
         (see tests/fixtures/README.md)",
        model_path.display()
    );
    let shape = &json["logits"]["shape"];
    let n_vocab = shape[1].as_u64().expect("logits.shape") as usize;
    let lpath = root
        .join("golden")
        .join(json["logits"]["file"].as_str().expect("logits.file"));
    let raw = std::fs::read(&lpath).unwrap_or_else(|e| panic!("{}: {e}", lpath.display()));
    let logits = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Golden {
        name: name.to_string(),
        json,
        model_path,
        logits,
        n_vocab,
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// KL(p ‖ q) of two logit rows (natural log).
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let lse = |l: &[f32]| {
        let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        m + l.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lp, lq) = (lse(p_logits), lse(q_logits));
    p_logits
        .iter()
        .zip(q_logits)
        .map(|(&a, &b)| {
            let lpa = a as f64 - lp;
            lpa.exp() * (lpa - (b as f64 - lq))
        })
        .sum()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// What a parity run measured.
#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub kl_mean: f64,
    pub kl_bound: f64,
    pub noise_floor: f64,
    pub top1_agree: f64,
    pub top1_positions: usize,
    /// Median over positions of the largest |logit difference| to llama.cpp, and the same
    /// between llama.cpp's own flash-attention paths.
    pub logit_diff: f64,
    pub floor_logit_diff: f64,
    /// Per cache type: (compared tokens, matching prefix length).
    pub greedy: Vec<(String, usize, usize)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<28} KL {:.2e} (bound {:.1e}, noise floor {:.2e})  |Δlogit| {:.3} (floor {:.3})  top-1 {:.1}% of {}  greedy",
            self.name,
            self.kl_mean,
            self.kl_bound,
            self.noise_floor,
            self.logit_diff,
            self.floor_logit_diff,
            100.0 * self.top1_agree,
            self.top1_positions
        )?;
        for (cache, n, ok) in &self.greedy {
            write!(f, " {cache}: {ok} same ({n} required)")?;
        }
        Ok(())
    }
}

fn load(path: &Path) -> Model<CpuBackend> {
    load_on(path, CpuBackend::new(2).expect("cpu"))
}

/// Loads a fixture on `backend`.
pub fn load_on<B: Backend + 'static>(path: &Path, backend: B) -> Model<B> {
    let gguf: GgufModel =
        sluice_native::open::open_model(path.to_str().expect("utf-8 path"), Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    block_on(Model::load(&gguf, backend, LoadOptions::default()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The forward-pass issue's KL bound for a fixture: 1e-4 for float weights and Q8_0, 2e-3 for
/// every other type (the name ends in the type; mixes have none).
pub fn issue_kl_bound(name: &str) -> f64 {
    let ty = name.rsplit('-').next().unwrap_or("");
    if ["F32", "F16", "BF16", "Q8_0"].contains(&ty) {
        1e-4
    } else {
        2e-3
    }
}

/// Every forward-pass golden under the fixture root (by name, sorted).
pub fn golden_names() -> Vec<String> {
    let dir = fixture_root().join("golden");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".json")?.to_string();
            dir.join(format!("{stem}.logits.f32"))
                .exists()
                .then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// Runs every parity check of one golden on the CPU backend; panics with a clear message on
/// failure.
pub fn check(name: &str, kl_limit: f64) -> Report {
    let g = golden(name);
    let model = load(&g.model_path);
    check_model(&g, &model, kl_limit)
}

/// [`check`] for a model already loaded on any backend (the GPU tests use the same goldens).
pub fn check_model<B: Backend + 'static>(g: &Golden, model: &Model<B>, kl_limit: f64) -> Report {
    let name = g.name.as_str();
    let seq = ids(&g.json["sequence"]["tokens"]);
    let prompt = ids(&g.json["greedy"]["prompt_tokens"]);
    let nv = g.n_vocab;
    assert_eq!(model.n_vocab, nv, "{name}: vocabulary size");
    let mut s = model
        .session(seq.len() + 40, GgmlType::F16, GgmlType::F16)
        .expect("session");
    let ours = block_on(s.eval(&seq, Logits::All)).expect("eval");
    let gaps: Vec<f64> = g.json["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0))
        .collect();
    let mut kl_sum = 0.0;
    let mut max_abs = Vec::with_capacity(seq.len());
    let (mut agree, mut counted) = (0usize, 0usize);
    for p in 0..seq.len() {
        let theirs = &g.logits[p * nv..(p + 1) * nv];
        let mine = &ours[p * nv..(p + 1) * nv];
        let k = kl(theirs, mine);
        max_abs.push(
            theirs
                .iter()
                .zip(mine)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max),
        );
        if std::env::var_os("SLUICE_PARITY_DEBUG").is_some() {
            println!(
                "  pos {p:2}: KL {k:.3e}  max |Δlogit| {:.3}  top1 {} / {}",
                max_abs[p],
                argmax(theirs),
                argmax(mine)
            );
        }
        kl_sum += k;
        if gaps[p] >= 0.1 {
            counted += 1;
            agree += (argmax(theirs) == argmax(mine)) as usize;
        }
    }
    let kl_mean = kl_sum / seq.len() as f64;
    max_abs.sort_by(f32::total_cmp);
    let logit_diff = max_abs[max_abs.len() / 2] as f64;
    let floor_logit_diff = g.json["noise_floor"]["median_over_positions_of_max_abs_logit_diff"]
        .as_f64()
        .unwrap_or(0.0);
    let floor = g.json["noise_floor"]["kl_mean"].as_f64().unwrap_or(0.0);
    let floor_top1 = g.json["noise_floor"]["top1_agreement"]
        .as_f64()
        .unwrap_or(1.0);
    let kl_bound = kl_limit.max(1.5 * floor);
    let top1_agree = if counted == 0 {
        1.0
    } else {
        agree as f64 / counted as f64
    };
    assert!(
        kl_mean <= kl_bound,
        "{name}: mean KL(llama.cpp ‖ sluice) {kl_mean:.3e} exceeds {kl_bound:.1e}"
    );
    assert!(
        top1_agree + 1e-9 >= floor_top1,
        "{name}: top-1 agreement {top1_agree:.3} at positions with gap ≥ 0.1 is below llama.cpp's own {floor_top1:.3}"
    );
    // KL hardly sees a confident position: the whole logit vector must stay as close to
    // llama.cpp as llama.cpp's two attention paths are to each other (median position).
    let logit_bound = 1.5 * floor_logit_diff + 5e-3;
    assert!(
        logit_diff <= logit_bound,
        "{name}: median over positions of max |logit − llama.cpp's| is {logit_diff:.3}, above {logit_bound:.3} (1.5 × llama.cpp's flash-attention on/off difference)"
    );
    let mut greedy = Vec::new();
    let runs = g.json["greedy"]["runs"].as_object().expect("greedy.runs");
    for (cache, run) in runs {
        let want = ids(&run["ids"]);
        // Compare up to llama.cpp's first near-tie, and no further than llama.cpp agrees with
        // itself (flash attention on vs off): past that point its own rounding decides.
        let near_tie = run["steps_before_near_tie"]
            .as_u64()
            .expect("steps_before_near_tie") as usize;
        let self_agreement = g.json["noise_floor"]["greedy_steps_agreeing_fa_on_off"]
            .as_u64()
            .unwrap_or(u64::MAX) as usize;
        let covered = near_tie.min(self_agreement);
        let ty = GgmlType::from_name(cache).expect("cache type");
        let got = greedy_run(model, &prompt, want.len(), ty);
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        assert!(
            same >= covered,
            "{name}: greedy with {cache} cache diverges at step {same} (llama.cpp's first near-tie is at {covered})\n  ours   {got:?}\n  theirs {want:?}"
        );
        greedy.push((cache.clone(), covered, same.min(want.len())));
    }
    Report {
        name: name.to_string(),
        kl_mean,
        kl_bound,
        noise_floor: floor,
        top1_agree,
        top1_positions: counted,
        logit_diff,
        floor_logit_diff,
        greedy,
    }
}

/// Greedy decoding as the golden's driver does: prompt in one batch, then one token at a
/// time, first maximum wins, EOS does not stop.
pub fn greedy_run<B: Backend + 'static>(
    model: &Model<B>,
    prompt: &[u32],
    n: usize,
    cache: GgmlType,
) -> Vec<u32> {
    let mut s = model
        .session(prompt.len() + n + 1, cache, cache)
        .expect("session");
    let mut logits = block_on(s.eval(prompt, Logits::Last)).expect("prompt");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = argmax(&logits) as u32;
        out.push(id);
        logits = block_on(s.eval(&[id], Logits::Last)).expect("decode");
    }
    out
}
