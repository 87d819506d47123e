//! Token sampling with llama.cpp's chain, defaults and random numbers.
//!
//! The chain is `penalties → top_k → top_p → min_p → temperature → dist`, each step a no-op
//! when disabled, as `common/sampling.cpp` builds it. `dist` draws from a 32-bit Mersenne
//! Twister seeded with `--seed`, through libstdc++'s `uniform_real_distribution<double>`
//! (two 32-bit draws per number), so a seed gives the same text on every run and platform.

use std::collections::{HashMap, VecDeque};

/// Sampling settings (llama.cpp defaults in [`SamplerParams::default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// ≤ 0 means greedy.
    pub temp: f32,
    /// ≤ 0 disables.
    pub top_k: i32,
    /// ≥ 1 disables.
    pub top_p: f32,
    /// ≤ 0 disables.
    pub min_p: f32,
    pub min_keep: usize,
    /// 1 disables.
    pub repeat_penalty: f32,
    pub freq_penalty: f32,
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at (0 disables).
    pub penalty_last_n: usize,
    pub seed: u32,
}

/// llama.cpp's "pick a random seed" value.
pub const RANDOM_SEED: u32 = 0xFFFF_FFFF;

impl Default for SamplerParams {
    fn default() -> Self {
        Self {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            min_keep: 0,
            repeat_penalty: 1.0,
            freq_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: RANDOM_SEED,
        }
    }
}

/// The 32-bit Mersenne Twister (std::mt19937).
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) as libstdc++'s `generate_canonical<double, 53>` makes it.
    pub fn next_f64(&mut self) -> f64 {
        let lo = self.next_u32() as f64;
        let hi = self.next_u32() as f64;
        let r = (lo + hi * 4_294_967_296.0) / 18_446_744_073_709_551_616.0;
        if r >= 1.0 {
            1.0 - f64::EPSILON / 2.0
        } else {
            r
        }
    }
}

/// A candidate token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
}

/// A stateful sampler: the RNG and the recent tokens for penalties.
pub struct Sampler {
    pub params: SamplerParams,
    rng: Mt19937,
    recent: VecDeque<u32>,
    candidates: Vec<Candidate>,
}

fn sort_desc(c: &mut [Candidate]) {
    c.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
}

impl Sampler {
    /// A sampler; a seed of [`RANDOM_SEED`] is replaced by `fallback_seed` (the caller's clock
    /// or entropy, since core has neither).
    pub fn new(params: SamplerParams, fallback_seed: u32) -> Self {
        let seed = if params.seed == RANDOM_SEED {
            fallback_seed
        } else {
            params.seed
        };
        Self {
            rng: Mt19937::new(seed),
            params,
            recent: VecDeque::new(),
            candidates: Vec::new(),
        }
    }

    /// Records a token that is now part of the context (for penalties).
    pub fn accept(&mut self, token: u32) {
        if self.params.penalty_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.penalty_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Picks the next token from `logits` (one per vocabulary entry).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = self.params.clone();
        let mut c = std::mem::take(&mut self.candidates);
        c.clear();
        c.extend(logits.iter().enumerate().map(|(id, &logit)| Candidate {
            id: id as u32,
            logit,
        }));
        let mut sorted = false;
        self.penalize(&mut c);
        if p.top_k > 0 {
            let k = (p.top_k as usize).min(c.len());
            sort_desc(&mut c);
            c.truncate(k);
            sorted = true;
        }
        if p.top_p < 1.0 {
            top_p(&mut c, p.top_p, p.min_keep, &mut sorted);
        }
        if p.min_p > 0.0 {
            min_p(&mut c, p.min_p, p.min_keep, &mut sorted);
        }
        temperature(&mut c, p.temp);
        let chosen = self.dist(&c, sorted);
        self.candidates = c;
        chosen
    }

    fn penalize(&self, c: &mut [Candidate]) {
        let p = &self.params;
        let off = p.penalty_last_n == 0
            || (p.repeat_penalty == 1.0 && p.freq_penalty == 0.0 && p.presence_penalty == 0.0);
        if off || self.recent.is_empty() {
            return;
        }
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in &self.recent {
            *counts.entry(t).or_default() += 1;
        }
        for cand in c.iter_mut() {
            if let Some(&n) = counts.get(&cand.id) {
                if cand.logit <= 0.0 {
                    cand.logit *= p.repeat_penalty;
                } else {
                    cand.logit /= p.repeat_penalty;
                }
                cand.logit -= n as f32 * p.freq_penalty + p.presence_penalty;
            }
        }
    }

    fn dist(&mut self, c: &[Candidate], sorted: bool) -> u32 {
        if c.len() == 1 {
            self.rng.next_f64();
            return c[0].id;
        }
        let max = if sorted {
            c[0].logit
        } else {
            c.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max)
        };
        let probs: Vec<f32> = c.iter().map(|x| (x.logit - max).exp()).collect();
        let sum: f64 = probs.iter().map(|&p| p as f64).sum();
        let target = sum * self.rng.next_f64();
        let mut run = 0.0f64;
        for (i, &p) in probs.iter().enumerate() {
            run += p as f64;
            if run >= target {
                return c[i].id;
            }
        }
        c[c.len() - 1].id
    }
}

/// Softmax probabilities of the candidates, in float as llama.cpp computes them.
fn softmax(c: &[Candidate], sorted: bool) -> Vec<f32> {
    let max = if sorted {
        c[0].logit
    } else {
        c.iter().map(|x| x.logit).fold(f32::NEG_INFINITY, f32::max)
    };
    let p: Vec<f32> = c.iter().map(|x| (x.logit - max).exp()).collect();
    let sum: f32 = p.iter().sum();
    p.into_iter().map(|x| x / sum).collect()
}

fn top_p(c: &mut Vec<Candidate>, p: f32, min_keep: usize, sorted: &mut bool) {
    if c.is_empty() {
        return;
    }
    if !*sorted {
        sort_desc(c);
        *sorted = true;
    }
    let probs = softmax(c, true);
    let mut cum = 0.0f32;
    let mut last = c.len();
    for (i, &pr) in probs.iter().enumerate() {
        cum += pr;
        if cum >= p && i + 1 >= min_keep {
            last = i + 1;
            break;
        }
    }
    c.truncate(last);
}

fn min_p(c: &mut Vec<Candidate>, p: f32, min_keep: usize, sorted: &mut bool) {
    if c.is_empty() {
        return;
    }
    if !*sorted {
        let max = c.iter().map(|x| x.logit).fold(-f32::MAX, f32::max);
        let min_logit = max + p.ln();
        let kept = c.iter().filter(|x| x.logit >= min_logit).count();
        if kept > 0 && kept >= min_keep {
            c.retain(|x| x.logit >= min_logit);
            return;
        }
        sort_desc(c);
        *sorted = true;
    }
    let min_logit = c[0].logit + p.ln();
    let mut i = 1;
    while i < c.len() && !(c[i].logit < min_logit && i >= min_keep) {
        i += 1;
    }
    c.truncate(i);
}

fn temperature(c: &mut [Candidate], temp: f32) {
    if temp <= 0.0 {
        let mut best = 0;
        for i in 1..c.len() {
            if c[i].logit > c[best].logit {
                c[best].logit = f32::NEG_INFINITY;
                best = i;
            } else {
                c[i].logit = f32::NEG_INFINITY;
            }
        }
        return;
    }
    c.iter_mut().for_each(|x| x.logit /= temp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard() {
        // The 10000th output of mt19937 seeded with 5489 is 4123659995 (C++ standard).
        let mut r = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = r.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn greedy_picks_the_first_maximum() {
        let params = SamplerParams {
            temp: 0.0,
            ..Default::default()
        };
        let mut s = Sampler::new(params, 1);
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0, 2.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(
                SamplerParams {
                    seed,
                    ..Default::default()
                },
                0,
            );
            (0..20).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(3407), run(3407));
        assert_ne!(run(3407), run(1));
    }

    #[test]
    fn min_p_keeps_tokens_within_the_ratio() {
        let mut c: Vec<Candidate> = [0.0f32, 2.0, 1.0, -5.0]
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
            })
            .collect();
        let mut sorted = false;
        min_p(&mut c, 0.3, 0, &mut sorted);
        // keep logits >= 2 + ln 0.3 = 0.796
        assert_eq!(c.iter().map(|x| x.id).collect::<Vec<_>>(), vec![1, 2]);
    }
}
