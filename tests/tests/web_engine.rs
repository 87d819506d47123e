//! The browser build's model-side code, run natively on the tiny DeepSeek-V3 fixture:
//! sluice-web's byte-budgeted expert cache must give exactly the logits of resident experts,
//! and its chat engine must feed and generate exactly the tokens of the CLI's chat loop.

use sluice_core::backend::Backend;
use sluice_core::chat::Message;
use sluice_core::cpu::CpuBackend;
use sluice_core::experts::ExpertStore;
use sluice_core::generate::{Generator, Stop};
use sluice_core::gguf::GgufModel;
use sluice_core::model::{Config, LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::sample::SamplerParams;
use sluice_core::source::block_on;
use sluice_core::tokenizer::Tokenizer;
use sluice_tests::parity::golden;
use sluice_web::engine::{detect_template, Engine, TurnParams};
use sluice_web::expert_cache::BudgetedExperts;

const FIXTURE: &str = "tiny-deepseek-v3";
const PROMPT: &str = "Create a Flappy Bird game in Python.";

fn clock() -> f64 {
    sluice_native::clock_ms()
}

fn open() -> GgufModel {
    let g = golden(FIXTURE);
    sluice_native::open::open_model(g.model_path.to_str().expect("utf-8"), Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", g.model_path.display()))
}

fn resident(gguf: &GgufModel) -> Model<CpuBackend> {
    block_on(Model::load(
        gguf,
        CpuBackend::new(1).expect("cpu"),
        LoadOptions::default(),
    ))
    .expect("load")
}

/// The model with experts streamed through a cache of `budget` bytes, and the cache's stats.
fn streamed(
    gguf: &GgufModel,
    budget: u64,
) -> (
    Model<CpuBackend>,
    sluice_web::expert_cache::SharedStats,
    u64,
) {
    let cfg = Config::from_metadata(gguf.metadata()).expect("config");
    let store = BudgetedExperts::<CpuBackend>::new(gguf, &cfg, budget, clock).expect("store");
    let stats = store.shared_stats();
    let first_moe = cfg.deepseek.as_ref().expect("deepseek").n_dense;
    let expert_bytes = store.layout().expert_bytes(first_moe);
    let options = LoadOptions {
        expert_store: Some(Box::new(store) as Box<dyn ExpertStore<CpuBackend>>),
        ..Default::default()
    };
    let model =
        block_on(Model::load(gguf, CpuBackend::new(1).expect("cpu"), options)).expect("load");
    (model, stats, expert_bytes)
}

/// The logits of the first half of `tokens` as one batch, then of each later token alone (so
/// the router asks for experts many times).
fn logits_all<B: Backend + 'static>(model: &Model<B>, tokens: &[u32]) -> Vec<f32> {
    let mut s = model
        .session(tokens.len(), GgmlType::F16, GgmlType::F16)
        .expect("session");
    let half = tokens.len() / 2;
    let mut out = block_on(s.eval(&tokens[..half], Logits::All)).expect("eval");
    for t in &tokens[half..] {
        out.extend(block_on(s.eval(&[*t], Logits::Last)).expect("eval"));
    }
    out
}

fn greedy() -> TurnParams {
    TurnParams {
        sampler: SamplerParams {
            temp: 0.0,
            seed: 1,
            ..SamplerParams::default()
        },
        fallback_seed: 0,
        n_predict: Some(32),
        chat: true,
        system: None,
        reset: false,
    }
}

fn engine(gguf: &GgufModel, model: Model<CpuBackend>) -> Engine<CpuBackend> {
    let tokenizer = Tokenizer::from_metadata(gguf.metadata()).expect("tokenizer");
    let template = detect_template(gguf.metadata(), &tokenizer).expect("template");
    assert!(template.is_some(), "the fixture has a chat template");
    Engine::new(model, tokenizer, template, 0, clock).expect("engine")
}

fn turn(
    e: &mut Engine<CpuBackend>,
    prompt: &str,
    params: &TurnParams,
    on_token: &mut dyn FnMut(Option<u32>, &str) -> bool,
) -> sluice_web::engine::TurnOutput {
    block_on(e.turn(prompt, params, on_token, &mut || None)).expect("turn")
}

#[test]
fn streamed_experts_give_exactly_the_resident_logits() {
    let gguf = open();
    let tokens: Vec<u32> = golden(FIXTURE).json["greedy"]["prompt_tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    let want = logits_all(&resident(&gguf), &tokens);
    // 0: nothing is kept; 3 experts: constant eviction; 1 GiB: everything stays.
    for experts_kept in [0u64, 3, 1 << 30] {
        let (_, _, expert_bytes) = streamed(&gguf, 0);
        let budget = experts_kept.saturating_mul(expert_bytes);
        let (model, stats, _) = streamed(&gguf, budget);
        let got = logits_all(&model, &tokens);
        let same_bits = want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same_bits,
            "budget {budget}: logits differ from resident experts"
        );
        let s = stats.get();
        println!("budget {budget} bytes: {s:?}");
        assert!(s.misses > 0, "budget {budget}: no expert was fetched");
        assert_eq!(s.bytes_read, s.misses * expert_bytes, "bytes read per miss");
        if experts_kept == 0 {
            assert_eq!(s.hits, 0, "an empty cache cannot hit");
        }
        if experts_kept == 3 {
            assert!(
                s.hits > 0 && s.misses > 6,
                "a cache of 3 experts hits and evicts"
            );
        }
        if experts_kept >= 1 << 30 {
            assert!(s.hits > 0, "a cache holding everything must hit");
            assert_eq!(s.misses, 6, "each of the 6 experts is fetched once");
        }
    }
}

#[test]
fn a_chat_turn_feeds_and_generates_the_cli_chat_loop_tokens() {
    let gguf = open();
    let g = golden(FIXTURE);
    let tokenizer = Tokenizer::from_metadata(gguf.metadata()).expect("tokenizer");
    let template = detect_template(gguf.metadata(), &tokenizer)
        .expect("template")
        .expect("fixture template");

    // What `sluice run --conversation --single-turn --temp 0 -n 32` does (chat_loop.rs).
    let model = resident(&gguf);
    let prompt = template.render(
        &[Message {
            role: "user".into(),
            content: PROMPT.into(),
        }],
        true,
    );
    let cli_prompt = tokenizer.encode(&prompt, true, true);
    let session = model
        .session(model.config.n_ctx_train, GgmlType::F16, GgmlType::F16)
        .expect("session");
    let mut gen = Generator::new(session, &tokenizer, greedy().sampler, 0, false, clock);
    block_on(gen.feed(&cli_prompt)).expect("feed");
    let mut cli_ids = Vec::new();
    block_on(gen.generate(Some(32), &mut |id, _| {
        cli_ids.push(id);
        true
    }))
    .expect("generate");

    let (streamed_model, _, _) = streamed(&gguf, 0);
    let mut e = engine(&gguf, streamed_model);
    let mut streamed_text = String::new();
    let out = turn(&mut e, PROMPT, &greedy(), &mut |_, text| {
        streamed_text.push_str(text);
        true
    });
    let golden_prompt: Vec<u32> = g.json["greedy"]["prompt_tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    assert_eq!(
        out.prompt_ids, golden_prompt,
        "prompt tokens vs llama.cpp's"
    );
    assert_eq!(out.prompt_ids, cli_prompt, "prompt tokens vs the CLI");
    assert_eq!(out.ids, cli_ids, "generated tokens vs the CLI");
    assert_eq!(out.ids.len(), 32);
    assert_eq!(out.stop, Stop::Limit);
    assert_eq!(
        out.perf.eval_tokens, 31,
        "the last token is sampled, not evaluated"
    );
    assert!(streamed_text.starts_with(&out.text) || out.text.starts_with(&streamed_text));
}

#[test]
fn a_second_turn_feeds_only_the_new_text() {
    let gguf = open();
    let mut e = engine(&gguf, resident(&gguf));
    let mut params = greedy();
    params.n_predict = Some(4);
    let first = turn(&mut e, PROMPT, &params, &mut |_, _| true);
    assert_eq!(e.n_past(), first.prompt_ids.len() + 3);
    let second = turn(&mut e, "Make it shorter.", &params, &mut |_, _| true);
    let bos = e.tokenizer().bos().expect("bos");
    assert_ne!(
        second.prompt_ids.first(),
        Some(&bos),
        "BOS only on the first turn"
    );
    let user = e.tokenizer().token_id("<｜User｜>").expect("user token");
    assert!(second.prompt_ids.contains(&user));
    // The pending token of turn 1, the new text, and three evaluated tokens of turn 2.
    assert_eq!(
        e.n_past(),
        first.prompt_ids.len() + 3 + 1 + second.prompt_ids.len() + 3
    );

    // A new system prompt starts over.
    params.system = Some("Be brief.".into());
    let third = turn(&mut e, PROMPT, &params, &mut |_, _| true);
    assert_eq!(third.prompt_ids.first(), Some(&bos));
    assert_eq!(e.n_past(), third.prompt_ids.len() + 3);
}

#[test]
fn stop_limits_and_raw_completion() {
    let gguf = open();
    let mut e = engine(&gguf, resident(&gguf));
    let mut seen = 0;
    let out = turn(&mut e, PROMPT, &greedy(), &mut |id, _| {
        seen += id.is_some() as usize;
        seen < 3
    });
    assert_eq!(out.stop, Stop::Cancelled);
    assert_eq!(out.ids.len(), 3);

    let mut none = greedy();
    none.n_predict = Some(0);
    none.reset = true;
    let out = turn(&mut e, PROMPT, &none, &mut |_, _| true);
    assert!(out.ids.is_empty());
    assert_eq!(out.stop, Stop::Limit);

    let mut raw = greedy();
    raw.chat = false;
    raw.n_predict = Some(2);
    let out = turn(&mut e, "Hello", &raw, &mut |_, _| true);
    assert_eq!(out.prompt_ids, e.tokenizer().encode("Hello", true, true));
    assert_eq!(out.ids.len(), 2);
}
