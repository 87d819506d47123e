//! The sampler draws tokens with the distribution its settings imply: empirical frequencies
//! over many draws pass a chi-square test against probabilities computed here independently
//! (softmax of the logits that survive each filter, divided by the temperature).

use sluice_core::sample::{Sampler, SamplerParams};

const LOGITS: [f32; 10] = [2.0, 1.5, 1.2, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -4.0];

/// Expected probabilities: keep the ids in `kept`, softmax of logit / temp.
fn expected(kept: &[usize], temp: f32) -> Vec<f64> {
    let mut p = vec![0.0f64; LOGITS.len()];
    let z: f64 = kept
        .iter()
        .map(|&i| ((LOGITS[i] / temp) as f64).exp())
        .sum();
    for &i in kept {
        p[i] = ((LOGITS[i] / temp) as f64).exp() / z;
    }
    p
}

/// Chi-square statistic of `counts` against `probs` over the categories with p > 0; also
/// checks that no token outside the support was drawn.
fn chi_square(counts: &[u64], probs: &[f64], n: u64) -> (f64, usize) {
    let mut stat = 0.0;
    let mut df = 0usize;
    for (c, p) in counts.iter().zip(probs) {
        if *p == 0.0 {
            assert_eq!(*c, 0, "a filtered-out token was drawn");
            continue;
        }
        let e = p * n as f64;
        stat += (*c as f64 - e).powi(2) / e;
        df += 1;
    }
    (stat, df.saturating_sub(1))
}

/// Upper 0.1 % critical values of chi-square for 1..=9 degrees of freedom.
const CRITICAL_999: [f64; 10] = [
    0.0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88,
];

fn check(name: &str, params: SamplerParams, kept: &[usize], temp: f32) {
    let n = 40_000u64;
    let mut s = Sampler::new(params, 0);
    let mut counts = vec![0u64; LOGITS.len()];
    for _ in 0..n {
        counts[s.sample(&LOGITS) as usize] += 1;
    }
    let probs = expected(kept, temp);
    let (stat, df) = chi_square(&counts, &probs, n);
    if df == 0 {
        assert_eq!(
            counts[kept[0]], n,
            "{name}: a single survivor must always be drawn"
        );
        return;
    }
    assert!(
        stat < CRITICAL_999[df],
        "{name}: chi-square {stat:.2} with {df} df; counts {counts:?}, expected {probs:?}"
    );
}

fn base(seed: u32) -> SamplerParams {
    SamplerParams {
        temp: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..Default::default()
    }
}

#[test]
fn plain_softmax_at_temperature_one() {
    check("temp 1", base(1), &(0..10).collect::<Vec<_>>(), 1.0);
}

#[test]
fn temperature_sharpens() {
    check(
        "temp 0.6",
        SamplerParams {
            temp: 0.6,
            ..base(2)
        },
        &(0..10).collect::<Vec<_>>(),
        0.6,
    );
}

#[test]
fn top_k_keeps_the_k_best() {
    check(
        "top-k 4",
        SamplerParams {
            top_k: 4,
            ..base(3)
        },
        &[0, 1, 2, 3],
        1.0,
    );
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    // Softmax at T=1 of LOGITS: cumulative 0.341, 0.547, 0.700, 0.826, 0.902, ... so p = 0.8
    // keeps the first four.
    check(
        "top-p 0.8",
        SamplerParams {
            top_p: 0.8,
            ..base(4)
        },
        &[0, 1, 2, 3],
        1.0,
    );
}

#[test]
fn min_p_drops_tokens_below_the_ratio() {
    // Keep logits >= 2 + ln(0.2) = 0.39: ids 0..=4.
    check(
        "min-p 0.2",
        SamplerParams {
            min_p: 0.2,
            ..base(5)
        },
        &[0, 1, 2, 3, 4],
        1.0,
    );
}

#[test]
fn the_default_chain_combines_filters_then_temperature() {
    // llama.cpp defaults: top-k 40, top-p 0.95, min-p 0.05, temp 0.8. min-p keeps logits >=
    // 2 + ln 0.05 = -0.996 (ids 0..=6); top-p at T=1 keeps ids 0..=6 (cumulative 0.948 at
    // id 5, 0.976 at id 6), so 0..=6 survive.
    let p = SamplerParams {
        seed: 6,
        ..Default::default()
    };
    check("defaults", p, &[0, 1, 2, 3, 4, 5, 6], 0.8);
}

#[test]
fn greedy_is_deterministic_argmax() {
    check(
        "temp 0",
        SamplerParams {
            temp: 0.0,
            ..base(7)
        },
        &[0],
        1.0,
    );
}
