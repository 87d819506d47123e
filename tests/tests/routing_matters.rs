//! Group-limited routing and the selection bias are not decoration: on fixture (a) (sigmoid
//! gating, `exp_probs_b`, expert groups), switching either off changes which experts run,
//! which moves the logits far beyond the parity bound, while the real rules match llama.cpp
//! (`forward_parity::mla_f32`). The golden also records, from llama.cpp's own graph, how many
//! tokens of the text each rule changes; that count must be non-zero for the test to mean
//! anything.

use sluice_core::cpu::CpuBackend;
use sluice_core::model::{LoadOptions, Logits, Model, RoutingAblation};
use sluice_core::source::block_on;
use sluice_core::tokenizer::Tokenizer;
use sluice_tests::parity::{golden, kl};

fn logits(ablation: RoutingAblation, tokens: &[u32]) -> Vec<f32> {
    let g = golden("tiny-dsv3-mla-F32");
    let gguf = sluice_native::open::open_model(g.model_path.to_str().unwrap(), Default::default())
        .unwrap();
    let opts = LoadOptions {
        routing_ablation: ablation,
        ..Default::default()
    };
    let model = block_on(Model::load(&gguf, CpuBackend::new(2).unwrap(), opts)).unwrap();
    let mut s = model
        .session(
            tokens.len(),
            sluice_core::quant::GgmlType::F16,
            sluice_core::quant::GgmlType::F16,
        )
        .unwrap();
    block_on(s.eval(tokens, Logits::All)).unwrap()
}

fn text_tokens() -> (Vec<u32>, usize) {
    let g = golden("tiny-dsv3-mla-F32");
    let gguf = sluice_native::open::open_model(g.model_path.to_str().unwrap(), Default::default())
        .unwrap();
    let tok = Tokenizer::from_metadata(gguf.metadata()).unwrap();
    let text =
        std::fs::read_to_string(sluice_tests::parity::fixture_root().join("text/river-notes.txt"))
            .unwrap();
    let mut ids = tok.encode(&text, true, true);
    ids.truncate(256);
    (ids, g.n_vocab)
}

/// Positions whose logits moved by more than `limit` somewhere in the vocabulary.
fn moved_positions(a: &[f32], b: &[f32], nv: usize, limit: f32) -> usize {
    a.chunks(nv)
        .zip(b.chunks(nv))
        .filter(|(x, y)| x.iter().zip(*y).any(|(p, q)| (p - q).abs() > limit))
        .count()
}

#[test]
fn the_golden_says_both_rules_change_llama_cpps_choice() {
    let g = golden("tiny-dsv3-mla-F32");
    let layers = g.json["routing"]["on_text"]["layers"]
        .as_array()
        .expect("routing.on_text.layers");
    let count = |key: &str| {
        layers
            .iter()
            .map(|l| l[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let by_bias = count("tokens_where_bias_changes_topk");
    let by_groups = count("tokens_where_group_limit_changes_topk");
    assert!(
        by_bias > 0 && by_groups > 0,
        "fixture (a) must be built so bias ({by_bias}) and groups ({by_groups}) matter"
    );
}

#[test]
fn ignoring_the_bias_or_the_groups_changes_the_output() {
    let (tokens, nv) = text_tokens();
    let real = logits(RoutingAblation::default(), &tokens);
    let no_bias = logits(
        RoutingAblation {
            ignore_bias: true,
            ..Default::default()
        },
        &tokens,
    );
    let no_groups = logits(
        RoutingAblation {
            ignore_groups: true,
            ..Default::default()
        },
        &tokens,
    );
    // llama.cpp's own flash-attention noise on this model moves logits by ~0.02; a changed
    // expert moves them by whole units. (KL is a poor measure here: the fixture's logits are
    // so peaked that even a large change of the non-top logits barely moves the distribution.)
    let limit = 0.5;
    let by_bias = moved_positions(&real, &no_bias, nv, limit);
    let by_groups = moved_positions(&real, &no_groups, nv, limit);
    println!(
        "of {} tokens, ignoring the bias moves {by_bias}, ignoring the groups moves {by_groups}",
        tokens.len()
    );
    assert!(
        by_bias >= 10,
        "ignoring the selection bias changed only {by_bias} positions"
    );
    assert!(
        by_groups >= 10,
        "ignoring the group limit changed only {by_groups} positions"
    );
    let kb = (0..tokens.len())
        .map(|p| kl(&real[p * nv..(p + 1) * nv], &no_bias[p * nv..(p + 1) * nv]))
        .sum::<f64>();
    println!("summed KL real ‖ no-bias {kb:.3e}");
}
