//! Perplexity and KL-divergence statistics, and llama-perplexity's base-logits file format.
//!
//! The text is cut into chunks of `n_ctx` tokens (the first token of each chunk replaced by
//! BOS when the vocabulary adds one); each chunk is evaluated from an empty cache and only
//! the second half of its positions is scored, so every scored token has context.
//!
//! A *base* file stores, for every scored position, the log-probabilities of the whole
//! vocabulary compressed to 16 bits: `"_logits_"`, `n_ctx` (u32), `n_vocab` (i32),
//! `n_chunk` (i32), the `n_chunk·n_ctx` tokens (i32), then per chunk `n_ctx − 1 − n_ctx/2`
//! rows of `nv = 2·⌈n_vocab/2⌉ + 4` u16: two f32 (`scale`, `min_log_prob`) followed by one
//! code per token, `log p = scale·code + min_log_prob`. Files written here are read by
//! llama-perplexity and the other way round.

use crate::{Error, Result};

pub const MAGIC: &[u8; 8] = b"_logits_";

/// u16 values per stored row.
pub fn row_u16(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// ggml's round-to-nearest through the float mantissa trick.
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Negative log-likelihood of `tok`, computed as llama-perplexity does.
pub fn nll(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    -((logits[tok] - max) as f64 - sum.ln())
}

/// Compresses a row's log-probabilities into `out` (`row_u16(n_vocab)` values); returns the
/// NLL of `tok`.
pub fn compress_row(logits: &[f32], tok: usize, out: &mut [u16]) -> f64 {
    let max = logits.iter().copied().fold(logits[0], f32::max);
    let min = logits
        .iter()
        .copied()
        .fold(logits[0], f32::min)
        .max(max - 16.0);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    let log_sum = sum.ln() as f32;
    let min_log_prob = min - max - log_sum;
    let scale = (max - min) / 65535.0;
    out[..2].copy_from_slice(&split_f32(scale));
    out[2..4].copy_from_slice(&split_f32(min_log_prob));
    let codes = &mut out[4..];
    codes.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (c, &l) in codes.iter_mut().zip(logits) {
            *c = if l > min {
                nearest_int(inv * (l - min)) as u16
            } else {
                0
            };
        }
    }
    (max + log_sum - logits[tok]) as f64
}

fn split_f32(v: f32) -> [u16; 2] {
    let b = v.to_le_bytes();
    [
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
    ]
}

fn join_f32(a: u16, b: u16) -> f32 {
    let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
    f32::from_le_bytes([x[0], x[1], y[0], y[1]])
}

/// Running sums for the KL-divergence report (as llama-perplexity keeps them).
#[derive(Clone, Debug, Default)]
pub struct KlStats {
    pub sum_nll: f64,
    pub sum_nll2: f64,
    pub sum_nll_base: f64,
    pub sum_nll_base2: f64,
    pub sum_nll_nll_base: f64,
    pub sum_kld: f64,
    pub sum_kld2: f64,
    pub sum_p_diff: f64,
    pub sum_p_diff2: f64,
    pub sum_p_diff4: f64,
    pub max_p_diff: f32,
    pub same_top: usize,
    pub count: usize,
    /// Every position's KL divergence and Δp, for percentiles.
    pub kld_values: Vec<f32>,
    pub p_diff_values: Vec<f32>,
}

impl KlStats {
    /// Compares one row of logits against a stored base row for target `tok`.
    pub fn add(&mut self, logits: &[f32], base: &[u16], tok: usize) {
        let (mut max, mut imax) = (logits[0], 0);
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
        let log_sum = sum.ln() as f32;
        let scale = join_f32(base[0], base[1]);
        let min_log_prob = join_f32(base[2], base[3]);
        let codes = &base[4..];
        let nll = max + log_sum - logits[tok];
        let nll_base = -(scale * codes[tok] as f32 + min_log_prob);
        self.sum_nll += nll as f64;
        self.sum_nll2 += (nll * nll) as f64;
        self.sum_nll_base += nll_base as f64;
        self.sum_nll_base2 += (nll_base * nll_base) as f64;
        self.sum_nll_nll_base += (nll * nll_base) as f64;
        let max_lse = max + log_sum;
        let mut kld = 0.0f64;
        let (mut imax_base, mut best) = (0usize, 0f32);
        for (i, &c) in codes.iter().take(logits.len()).enumerate() {
            let lp_base = scale * c as f32 + min_log_prob;
            if i == 0 || lp_base > best {
                best = lp_base;
                imax_base = i;
            }
            if lp_base > -16.0 {
                kld += (lp_base.exp() * (lp_base - logits[i] + max_lse)) as f64;
            }
        }
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.count += 1;
        if imax == imax_base {
            self.same_top += 1;
        }
        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.sum_p_diff += p_diff as f64;
        let d2 = (p_diff * p_diff) as f64;
        self.sum_p_diff2 += d2;
        self.sum_p_diff4 += d2 * d2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        self.kld_values.push(kld as f32);
        self.p_diff_values.push(p_diff);
    }

    /// Mean and its standard error of a summed quantity.
    pub fn mean_unc(sum: f64, sum2: f64, n: usize) -> (f64, f64) {
        if n < 1 {
            return (0.0, 0.0);
        }
        let f = sum / n as f64;
        let d = sum2 / n as f64 - f * f;
        (
            f,
            if d > 0.0 && n > 10 {
                (d / (n as f64 - 1.0)).sqrt()
            } else {
                0.0
            },
        )
    }

    pub fn mean_kld(&self) -> (f64, f64) {
        Self::mean_unc(self.sum_kld, self.sum_kld2, self.count)
    }

    pub fn same_top_fraction(&self) -> f64 {
        self.same_top as f64 / self.count.max(1) as f64
    }
}

/// Linear-interpolated percentile of sorted values (llama-perplexity's rule).
pub fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    let f = p - ip as f32;
    (1.0 - f) * sorted[ip] + f * sorted[(ip + 1).min(sorted.len() - 1)]
}

/// The header and tokens of a base file.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseHeader {
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
    pub tokens: Vec<u32>,
}

impl BaseHeader {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + 4 * self.tokens.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.n_ctx as u32).to_le_bytes());
        out.extend_from_slice(&(self.n_vocab as i32).to_le_bytes());
        out.extend_from_slice(&(self.n_chunk as i32).to_le_bytes());
        for &t in &self.tokens {
            out.extend_from_slice(&(t as i32).to_le_bytes());
        }
        out
    }

    /// Parses the header from the start of a file of `file_len` bytes; returns the header and
    /// its length. Sizes are checked against the file before anything is allocated.
    pub fn parse(name: &str, bytes: &[u8], file_len: u64) -> Result<(BaseHeader, usize)> {
        let bad = |at: u64, field: &str, msg: String| Error::format(name, at, field, msg);
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(bad(
                0,
                "magic",
                "not a llama-perplexity logits file (no \"_logits_\" header)".into(),
            ));
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let n_ctx = word(8) as usize;
        let n_vocab = word(12) as i32;
        let n_chunk = word(16) as i32;
        if n_ctx < 4 || n_vocab <= 0 || n_chunk <= 0 {
            return Err(bad(
                8,
                "header",
                format!("n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}"),
            ));
        }
        let (n_vocab, n_chunk) = (n_vocab as usize, n_chunk as usize);
        let n_tokens = (n_ctx as u64).checked_mul(n_chunk as u64);
        let rows = (n_ctx - 1 - n_ctx / 2) as u64;
        let need = n_tokens.and_then(|t| {
            let body = rows
                .checked_mul(row_u16(n_vocab) as u64)?
                .checked_mul(2)?
                .checked_mul(n_chunk as u64)?;
            (20 + 4 * t).checked_add(body)
        });
        match need {
            Some(need) if need <= file_len => {}
            _ => return Err(bad(8, "header", format!("n_ctx {n_ctx} × {n_chunk} chunks × vocab {n_vocab} do not fit the {file_len}-byte file"))),
        }
        let n_tokens = n_ctx * n_chunk;
        let head = 20 + 4 * n_tokens;
        if bytes.len() < head {
            return Err(bad(20, "tokens", "file shorter than its token list".into()));
        }
        let tokens = (0..n_tokens).map(|i| word(20 + 4 * i)).collect();
        Ok((
            BaseHeader {
                n_ctx,
                n_vocab,
                n_chunk,
                tokens,
            },
            head,
        ))
    }

    /// Bytes of one chunk's rows.
    pub fn chunk_bytes(&self) -> usize {
        (self.n_ctx - 1 - self.n_ctx / 2) * row_u16(self.n_vocab) * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_rows_round_trip_log_probs() {
        let logits: Vec<f32> = (0..101)
            .map(|i| ((i * 7919) % 97) as f32 * 0.13 - 4.0)
            .collect();
        let mut row = vec![0u16; row_u16(logits.len())];
        let n = compress_row(&logits, 5, &mut row);
        assert!((n - nll(&logits, 5)).abs() < 1e-4);
        let mut s = KlStats::default();
        s.add(&logits, &row, 5);
        assert!(
            s.sum_kld.abs() < 1e-4,
            "same logits must give ~0 KL, got {}",
            s.sum_kld
        );
        assert_eq!(s.same_top, 1);
    }

    #[test]
    fn header_round_trips_and_rejects_absurd_sizes() {
        let h = BaseHeader {
            n_ctx: 8,
            n_vocab: 3,
            n_chunk: 1,
            tokens: (0..8).collect(),
        };
        let mut bytes = h.to_bytes();
        bytes.extend(vec![0u8; h.chunk_bytes()]);
        let (back, len) = BaseHeader::parse("x", &bytes, bytes.len() as u64).unwrap();
        assert_eq!(back, h);
        assert_eq!(len, 20 + 32);
        assert!(BaseHeader::parse("x", &bytes[..40], 40).is_err());
    }
}
