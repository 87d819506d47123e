//! The streaming expert store against the fully resident run, on the deepseek fixtures.
//!
//! Logits must be bit-for-bit identical (same bytes, same kernels) for expert-cache budgets of
//! 5 %, 25 % and 100 % of all expert bytes, read from a memory map, with positioned reads
//! (`--no-mmap`) and over HTTP from `sluice serve` on 127.0.0.1, with prefetch on and off; for
//! the MLA model (a) and the 3-part split default model. Also: the host tier under a small
//! backend tier, a fused `ffn_gate_up_exps` file, the policy simulator replaying the store's
//! own trace, and a corrupted expert slab caught by the integrity manifest.

use sluice_core::cpu::CpuBackend;
use sluice_core::experts::trace::simulate;
use sluice_core::experts::{
    ExpertLayout, PolicyKind, StoreStats, StreamingExperts, StreamingOptions, TracingStore,
};
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use sluice_native::http::server::{start, ServerConfig, ServerHandle};
use sluice_native::http::HttpOpener;
use sluice_native::load::build_model;
use sluice_native::open::{open_model, LocalAccess};
use sluice_tests::parity::{fixture_root, golden};
use std::path::{Path, PathBuf};

/// The prompt and the tokens fed one at a time after it.
struct Script {
    prompt: Vec<u32>,
    follow: Vec<u32>,
}

fn script(golden_name: &str) -> Script {
    let g = golden(golden_name);
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    let prompt = ids(&g.json["greedy"]["prompt_tokens"]);
    let follow = ids(&g.json["greedy"]["runs"]["f16"]["ids"])[..8].to_vec();
    Script { prompt, follow }
}

/// Logits of the prompt (every position) and of each following token.
fn drive(model: &Model<CpuBackend>, s: &Script) -> Vec<Vec<f32>> {
    let mut session = model
        .session(
            s.prompt.len() + s.follow.len() + 1,
            GgmlType::F16,
            GgmlType::F16,
        )
        .expect("session");
    let mut out = vec![block_on(session.eval(&s.prompt, Logits::All)).expect("prompt")];
    for &t in &s.follow {
        out.push(block_on(session.eval(&[t], Logits::Last)).expect("decode"));
    }
    out
}

fn assert_bit_identical(want: &[Vec<f32>], got: &[Vec<f32>], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: steps");
    for (step, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.len(), g.len(), "{what}: step {step} length");
        if let Some(i) = (0..w.len()).find(|&i| w[i].to_bits() != g[i].to_bits()) {
            panic!(
                "{what}: step {step} logit {i} differs: resident {} streamed {}",
                w[i], g[i]
            );
        }
    }
}

fn resident(gguf: &GgufModel) -> Model<CpuBackend> {
    build_model(gguf, 2, None).expect("resident load")
}

fn options(layout: &ExpertLayout, percent: u64, prefetch: bool) -> StreamingOptions {
    StreamingOptions {
        backend_budget: layout.total_bytes() * percent / 100,
        prefetch,
        ..Default::default()
    }
}

fn serve(root: &Path) -> ServerHandle {
    let mut config = ServerConfig::new(root);
    config.port = 0;
    start(config).expect("start sluice serve")
}

/// Every source × budget × prefetch combination of one model, against its resident run.
fn check_model(golden_name: &str, rel_path: &str) {
    let s = script(golden_name);
    let models = fixture_root().join("models");
    let path = models.join(rel_path);
    let path_str = path.to_str().expect("utf-8 path");
    let mapped = open_model(path_str, LocalAccess::Mmap).expect("open");
    let want = drive(&resident(&mapped), &s);
    let layout = ExpertLayout::from_model(&mapped).expect("layout");
    assert!(layout.has_experts());

    let server = serve(&models);
    let url = format!("{}/{rel_path}", server.base_url());
    let sources: Vec<(&str, GgufModel)> = vec![
        ("mmap", mapped),
        (
            "no-mmap",
            open_model(path_str, LocalAccess::Read).expect("open for reads"),
        ),
        (
            "http",
            block_on(GgufModel::open(&url, &HttpOpener::default())).expect("open URL"),
        ),
    ];
    for (source, gguf) in &sources {
        for percent in [5, 25, 100] {
            for prefetch in [false, true] {
                let what =
                    format!("{golden_name} from {source}, budget {percent}%, prefetch {prefetch}");
                let model = build_model(gguf, 2, Some(options(&layout, percent, prefetch)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let got = drive(&model, &s);
                assert_bit_identical(&want, &got, &what);
                let st = model.expert_stats();
                check_stats(&st, &layout, percent, prefetch, &what);
                println!("{what}: {st}");
            }
        }
    }
    server.shutdown();
}

fn check_stats(st: &StoreStats, layout: &ExpertLayout, percent: u64, prefetch: bool, what: &str) {
    assert!(st.requests() > 0, "{what}: no requests");
    assert!(st.misses > 0, "{what}: a cold cache must miss");
    if percent == 100 {
        assert_eq!(st.evictions, 0, "{what}: everything fits");
        assert!(st.hits > 0, "{what}: decoding must reuse experts");
    }
    if layout.total_bytes() * percent / 100 < layout.max_expert_bytes() {
        assert_eq!(
            st.hits, 0,
            "{what}: a budget below one expert caches nothing"
        );
    }
    if prefetch {
        assert!(st.prefetch_predicted > 0, "{what}: no predictions");
        assert!(st.prefetch_correct > 0, "{what}: no prediction was right");
    } else {
        assert_eq!(st.prefetch_issued + st.prefetch_predicted, 0, "{what}");
    }
    let read_per_expert = st.bytes_read / (st.misses + st.prefetch_issued).max(1);
    assert!(read_per_expert <= layout.max_expert_bytes(), "{what}");
}

#[test]
fn mla_model_streams_bit_identically() {
    check_model("tiny-dsv3-mla-Q4_K", "tiny-dsv3-mla-Q4_K.gguf");
}

#[test]
fn split_default_model_streams_bit_identically() {
    check_model(
        "tiny-deepseek-v3",
        "split/tiny-deepseek-v3-00001-of-00003.gguf",
    );
}

fn mla_path() -> PathBuf {
    fixture_root()
        .join("models")
        .join("tiny-dsv3-mla-Q4_K.gguf")
}

#[test]
fn host_tier_serves_a_small_backend_tier_and_reads_run_inline() {
    let s = script("tiny-dsv3-mla-Q4_K");
    let gguf = open_model(mla_path().to_str().unwrap(), LocalAccess::Read).unwrap();
    let want = drive(&resident(&gguf), &s);
    let layout = ExpertLayout::from_model(&gguf).unwrap();
    for io_threads in [0, 3] {
        let opts = StreamingOptions {
            backend_budget: layout.max_expert_bytes(),
            host_budget: layout.total_bytes(),
            io_threads,
            ..Default::default()
        };
        let model = build_model(&gguf, 2, Some(opts)).unwrap();
        let got = drive(&model, &s);
        assert_bit_identical(&want, &got, &format!("host tier, {io_threads} I/O threads"));
        let st = model.expert_stats();
        assert!(st.host_hits > 0, "{st:?}");
        // With every byte in the host tier, nothing is read twice.
        assert!(
            st.bytes_read <= layout.total_bytes() + st.prefetch_issued * layout.max_expert_bytes(),
            "{st:?}"
        );
    }
}

#[test]
fn reads_driven_by_their_waiter_over_http() {
    // No I/O threads: every read is the source's future, started by one poll and finished by
    // the layer that awaits it (the browser's way, where there are no threads).
    let s = script("tiny-dsv3-mla-Q4_K");
    let models = fixture_root().join("models");
    let mapped = open_model(mla_path().to_str().unwrap(), LocalAccess::Mmap).unwrap();
    let want = drive(&resident(&mapped), &s);
    let layout = ExpertLayout::from_model(&mapped).unwrap();
    let server = serve(&models);
    let url = format!("{}/tiny-dsv3-mla-Q4_K.gguf", server.base_url());
    let remote = block_on(GgufModel::open(&url, &HttpOpener::default())).unwrap();
    for percent in [25, 100] {
        let opts = StreamingOptions {
            io_threads: 0,
            ..options(&layout, percent, true)
        };
        let model = build_model(&remote, 2, Some(opts)).unwrap();
        assert_bit_identical(
            &want,
            &drive(&model, &s),
            &format!("inline HTTP, {percent}%"),
        );
        assert!(model.expert_stats().prefetch_useful > 0);
    }
    server.shutdown();
}

#[test]
fn simulator_replays_the_stores_own_trace() {
    let s = script("tiny-deepseek-v3");
    let path = fixture_root().join("models/tiny-deepseek-v3.gguf");
    let gguf = open_model(path.to_str().unwrap(), LocalAccess::Read).unwrap();
    let layout = ExpertLayout::from_model(&gguf).unwrap();
    let n_total = layout.layers.iter().flatten().count() * layout.n_expert;
    for policy in [PolicyKind::Lru, PolicyKind::default_for(n_total)] {
        for percent in [25, 50, 75] {
            let budget = layout.total_bytes() * percent / 100;
            let store = StreamingExperts::<CpuBackend>::from_model(
                &gguf,
                StreamingOptions {
                    backend_budget: budget,
                    policy: Some(policy),
                    prefetch: false,
                    ..Default::default()
                },
            )
            .unwrap();
            let (tracing, trace) = TracingStore::new(store, false);
            let opts = LoadOptions {
                expert_store: Some(Box::new(tracing)),
                ..Default::default()
            };
            let model = block_on(Model::load(&gguf, CpuBackend::new(2).unwrap(), opts)).unwrap();
            drive(&model, &s);
            let st = model.expert_stats();
            let sim = simulate(&trace.borrow(), &|l| layout.expert_bytes(l), budget, policy);
            assert_eq!(
                (sim.requests, sim.hits, sim.bytes_read),
                (st.requests(), st.hits, st.bytes_read),
                "{} at {percent}%",
                policy.label()
            );
        }
    }
}

/// Writes a copy of `src` whose layer experts use one fused `ffn_gate_up_exps` tensor.
fn write_fused(src: &GgufModel, out: &Path) {
    use sluice_core::gguf::writer::GgufWriter;
    let mut w = GgufWriter::new(src.metadata().clone()).unwrap();
    let mut plan: Vec<Vec<(String, usize)>> = Vec::new(); // per output tensor: (source tensor, rows per expert) pieces
    for t in src.tensors() {
        let name = t.name();
        if name.ends_with("ffn_up_exps.weight") {
            continue;
        }
        if let Some(prefix) = name.strip_suffix("ffn_gate_exps.weight") {
            let up = src.tensor(&format!("{prefix}ffn_up_exps.weight")).unwrap();
            assert_eq!(
                t.info.ty, up.info.ty,
                "gate and up must share a type to fuse"
            );
            let d = &t.info.dims;
            w.add_tensor(
                &format!("{prefix}ffn_gate_up_exps.weight"),
                t.info.ty,
                &[d[0], 2 * d[1], d[2]],
            )
            .unwrap();
            plan.push(vec![(name.to_string(), 0), (up.name().to_string(), 0)]);
        } else {
            w.add_tensor(name, t.info.ty, &t.info.dims).unwrap();
            plan.push(vec![(name.to_string(), usize::MAX)]);
        }
    }
    let mut file = std::fs::File::create(out).unwrap();
    let mut data = |i: usize, _: &sluice_core::gguf::TensorInfo, o: &mut dyn std::io::Write| {
        let pieces = &plan[i];
        let bytes = |n: &str| src.tensor_bytes(src.tensor(n).unwrap()).unwrap().unwrap();
        if pieces.len() == 1 {
            o.write_all(bytes(&pieces[0].0)).unwrap();
        } else {
            let (g, u) = (bytes(&pieces[0].0), bytes(&pieces[1].0));
            let ne = src.tensor(&pieces[0].0).unwrap().info.ne(2) as usize;
            let slab = g.len() / ne;
            for e in 0..ne {
                o.write_all(&g[e * slab..(e + 1) * slab]).unwrap();
                o.write_all(&u[e * slab..(e + 1) * slab]).unwrap();
            }
        }
        Ok(())
    };
    w.write_to(&mut file, &out.display().to_string(), &mut data)
        .unwrap();
}

#[test]
fn fused_gate_up_file_streams_bit_identically() {
    let s = script("tiny-dsv3-mla-Q8_0");
    let src_path = fixture_root().join("models/tiny-dsv3-mla-Q8_0.gguf");
    let src = open_model(src_path.to_str().unwrap(), LocalAccess::Mmap).unwrap();
    let want = drive(&resident(&src), &s);
    let dir = sluice_tests::gguf_build::scratch_dir("fused-experts");
    let fused_path = dir.join("fused.gguf");
    write_fused(&src, &fused_path);
    let fused = open_model(fused_path.to_str().unwrap(), LocalAccess::Read).unwrap();
    assert!(fused.tensor("blk.1.ffn_gate_up_exps.weight").is_some());
    // Resident and streamed runs of the fused file both equal the separate file's logits.
    assert_bit_identical(&want, &drive(&resident(&fused), &s), "fused, resident");
    let layout = ExpertLayout::from_model(&fused).unwrap();
    for percent in [5, 100] {
        let model = build_model(&fused, 2, Some(options(&layout, percent, true))).unwrap();
        assert_bit_identical(&want, &drive(&model, &s), &format!("fused, {percent}%"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corrupted_slab_is_caught_by_the_manifest() {
    use sluice_native::manifest::{manifest_path_for, Manifest};
    use sluice_native::open::{open_model_with, OpenOptions, Verify};
    let s = script("tiny-dsv3-mla-Q4_K");
    let good = open_model(mla_path().to_str().unwrap(), LocalAccess::Mmap).unwrap();
    // The first expert the MoE layer asks for.
    let (tracing, trace) = TracingStore::new(
        StreamingExperts::<CpuBackend>::from_model(&good, StreamingOptions::default()).unwrap(),
        false,
    );
    let opts = LoadOptions {
        expert_store: Some(Box::new(tracing)),
        ..Default::default()
    };
    let model = block_on(Model::load(&good, CpuBackend::new(2).unwrap(), opts)).unwrap();
    drive(&model, &s);
    let (layer, victim) = {
        let t = trace.borrow();
        let (l, ids) = t.uses().next().expect("a MoE request");
        (l, ids[0])
    };

    let dir = sluice_tests::gguf_build::scratch_dir("corrupt-slab");
    let copy = dir.join("mla.gguf");
    std::fs::copy(mla_path(), &copy).unwrap();
    let copy_str = copy.to_str().unwrap().to_string();
    let manifest = Manifest::build(&good, 1).unwrap();
    let mut manifest_for_copy = manifest.clone();
    manifest_for_copy.parts[0].file = "mla.gguf".into();
    manifest_for_copy
        .write(Path::new(&manifest_path_for(&copy_str).unwrap()), false)
        .unwrap();
    // Flip one byte in the middle of the victim's slab of the layer's last expert tensor: the
    // header is read as the first MiB of the file, and a whole tensor inside that read is
    // verified (and refused) at open, before the store could be tested.
    let t = ["gate", "up", "down"]
        .iter()
        .map(|w| {
            good.tensor(&format!("blk.{layer}.ffn_{w}_exps.weight"))
                .unwrap()
        })
        .max_by_key(|t| t.data_start)
        .unwrap();
    assert!(t.data_start >= 1 << 20, "fixture too small for this test");
    let tensor = t.name().to_string();
    let slab = t.info.nbytes().unwrap() / t.info.ne(2);
    let at = t.data_start + victim as u64 * slab + slab / 2;
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[at as usize] ^= 0x5a;
    std::fs::write(&copy, &bytes).unwrap();

    let server = serve(&dir);
    let url = format!("{}/mla.gguf", server.base_url());
    for (what, path, access, verify) in [
        ("http", url.as_str(), LocalAccess::Mmap, Verify::Auto),
        (
            "file",
            copy_str.as_str(),
            LocalAccess::Read,
            Verify::Required,
        ),
    ] {
        let opened = open_model_with(
            path,
            &OpenOptions {
                access,
                verify,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(opened.manifest.is_some(), "{what}");
        let layout = ExpertLayout::from_model(&opened.model).unwrap();
        let model = build_model(&opened.model, 2, Some(options(&layout, 100, true))).unwrap();
        let mut session = model.session(64, GgmlType::F16, GgmlType::F16).unwrap();
        let err = block_on(session.eval(&s.prompt, Logits::All))
            .expect_err("a corrupted expert must not be used")
            .to_string();
        assert!(
            err.contains(&tensor)
                && err.contains(&format!("expert {victim}"))
                && err.contains("does not match the manifest"),
            "{what}: {err}"
        );
    }
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
