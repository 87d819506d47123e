//! Expert selection for mixture-of-experts layers, on the host.
//!
//! Given router logits for each token, this picks the experts and their mixing weights exactly
//! as llama.cpp's `build_moe_ffn` does: gating function, selection bias (selection only),
//! group-limited routing (groups scored by the sum of their two best biased scores), top-k,
//! weight normalisation clamped at the smallest f16 normal, then scaling.
//!
//! It runs on the host because the expert store needs the ids anyway (to page experts in),
//! and the router output is tiny (`n_expert` floats per token).

use super::config::Gating;

/// Routing options of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingParams {
    pub n_expert: usize,
    pub k_used: usize,
    pub gating: Gating,
    /// Expert groups (0 or 1 = no group limit) and how many groups are kept.
    pub n_group: usize,
    pub n_group_used: usize,
    pub norm: bool,
    pub scale: f32,
}

/// Smallest positive normal f16: llama.cpp's clamp for the weight sum.
const MIN_WEIGHT_SUM: f32 = 6.103_515_6e-5;

/// Selected experts (`k_used` per token, best first) and their weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    pub experts: Vec<u32>,
    pub weights: Vec<f32>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax_in_place(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x as f64;
    }
    let inv = (1.0 / sum) as f32;
    v.iter_mut().for_each(|x| *x *= inv);
}

/// Indices of the `k` largest values, largest first; ties keep the lower index first.
fn top_k(values: &[f32], k: usize, out: &mut Vec<u32>) {
    out.clear();
    out.extend(0..values.len() as u32);
    let cmp = |a: &u32, b: &u32| {
        values[*b as usize]
            .total_cmp(&values[*a as usize])
            .then(a.cmp(b))
    };
    if k < out.len() {
        out.select_nth_unstable_by(k, cmp);
        out.truncate(k);
    }
    out.sort_by(cmp);
}

/// Routes every token. `logits` is `[n_tokens][n_expert]`; `bias` has `n_expert` entries.
pub fn route(p: &RoutingParams, logits: &[f32], bias: Option<&[f32]>) -> Routing {
    let n_tokens = logits.len() / p.n_expert.max(1);
    let mut out = Routing {
        experts: Vec::with_capacity(n_tokens * p.k_used),
        weights: Vec::with_capacity(n_tokens * p.k_used),
    };
    let mut probs = vec![0f32; p.n_expert];
    let mut select = vec![0f32; p.n_expert];
    let mut idx = Vec::with_capacity(p.n_expert);
    let mut group_scores = Vec::new();
    for t in 0..n_tokens {
        let z = &logits[t * p.n_expert..(t + 1) * p.n_expert];
        probs.copy_from_slice(z);
        match p.gating {
            Gating::Softmax => softmax_in_place(&mut probs),
            Gating::Sigmoid => probs.iter_mut().for_each(|x| *x = sigmoid(*x)),
            Gating::SoftmaxWeight => {}
            Gating::SqrtSoftplus => probs.iter_mut().for_each(|x| {
                let sp = if *x > 20.0 { *x } else { x.exp().ln_1p() };
                *x = sp.sqrt()
            }),
        }
        select.copy_from_slice(&probs);
        if let Some(b) = bias {
            select.iter_mut().zip(b).for_each(|(s, b)| *s += b);
        }
        if p.n_group > 1 {
            let per_group = p.n_expert / p.n_group;
            group_scores.clear();
            for g in select.chunks(per_group) {
                top_k(g, 2.min(per_group), &mut idx);
                group_scores.push(idx.iter().map(|&i| g[i as usize]).sum::<f32>());
            }
            top_k(&group_scores, p.n_group_used, &mut idx);
            for (g, chunk) in select.chunks_mut(per_group).enumerate() {
                if !idx.contains(&(g as u32)) {
                    chunk.fill(f32::NEG_INFINITY);
                }
            }
        }
        top_k(&select, p.k_used, &mut idx);
        let first = out.weights.len();
        for &e in &idx {
            out.experts.push(e);
            out.weights.push(probs[e as usize]);
        }
        let w = &mut out.weights[first..];
        if p.gating == Gating::SoftmaxWeight {
            softmax_in_place(w);
        }
        if p.norm {
            let sum: f32 = w.iter().sum();
            let sum = sum.max(MIN_WEIGHT_SUM);
            w.iter_mut().for_each(|x| *x /= sum);
        }
        if p.scale != 0.0 && p.scale != 1.0 {
            w.iter_mut().for_each(|x| *x *= p.scale);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n_group: usize, n_group_used: usize) -> RoutingParams {
        RoutingParams {
            n_expert: 8,
            k_used: 2,
            gating: Gating::Sigmoid,
            n_group,
            n_group_used,
            norm: true,
            scale: 2.5,
        }
    }

    #[test]
    fn bias_changes_selection_but_not_weights() {
        let logits = [3.0, 2.9, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let plain = route(&params(0, 0), &logits, None);
        assert_eq!(plain.experts, vec![0, 1]);
        let bias = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let biased = route(&params(0, 0), &logits, Some(&bias));
        assert_eq!(biased.experts, vec![7, 0]);
        let (s7, s0) = (sigmoid(2.0), sigmoid(3.0));
        let sum = s7 + s0;
        assert!((biased.weights[0] - s7 / sum * 2.5).abs() < 1e-6);
        assert!((biased.weights[1] - s0 / sum * 2.5).abs() < 1e-6);
    }

    #[test]
    fn group_limit_scores_groups_by_their_two_best() {
        // 4 groups of 2. Group 0 has the single best expert but a weak partner;
        // group 3 has two good ones. With one group kept, group 3 wins.
        let logits = [5.0, -5.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0];
        let limited = route(&params(4, 1), &logits, None);
        assert_eq!(limited.experts, vec![6, 7]);
        let free = route(&params(0, 0), &logits, None);
        assert_eq!(free.experts[0], 0);
    }

    #[test]
    fn softmax_weights_normalise_over_the_selection() {
        let p = RoutingParams {
            gating: Gating::SoftmaxWeight,
            norm: false,
            scale: 0.0,
            ..params(0, 0)
        };
        let r = route(&p, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], None);
        assert_eq!(r.experts, vec![0, 7]);
        assert!((r.weights[0] - 0.5).abs() < 1e-6);
    }
}
