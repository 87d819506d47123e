//! `sluice perplexity`: llama-perplexity's perplexity and KL-divergence modes.
//!
//! Same chunking, scoring and output as llama-perplexity; `--kl-divergence-base FILE` writes
//! (or, with `--kl-divergence`, reads) its base-logits file format, so a base made by either
//! tool can be compared by either tool. See `sluice_core::perplexity` for the format.

use anyhow::{bail, Context, Result};
use clap::Args;
use sluice_core::model::Logits;
use sluice_core::perplexity::{compress_row, nll, percentile, row_u16, BaseHeader, KlStats};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use std::io::{Read, Write};

#[derive(Args, Debug, Clone)]
pub struct PerplexityArgs {
    /// Model file (any split part).
    #[arg(short = 'm', long)]
    pub model: String,
    /// Text file to score (perplexity mode).
    #[arg(short = 'f', long = "file", value_name = "FNAME")]
    pub file: Option<String>,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Score at most this many chunks (-1 = all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub chunks: i64,
    /// Base log-probabilities file: written in perplexity mode, read with --kl-divergence.
    #[arg(long = "kl-divergence-base", value_name = "FNAME")]
    pub kl_divergence_base: Option<String>,
    /// Compare against --kl-divergence-base instead of scoring a text.
    #[arg(long = "kl-divergence")]
    pub kl_divergence: bool,
    /// CPU threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0, allow_negative_numbers = true)]
    pub threads: i64,
    /// Read weights with file reads instead of a memory map.
    #[arg(long = "no-mmap")]
    pub no_mmap: bool,
    /// Logical batch size (accepted for compatibility).
    #[arg(short = 'b', long = "batch-size")]
    pub batch_size: Option<usize>,
}

/// Entry point of `sluice perplexity`.
pub fn run(args: PerplexityArgs) -> Result<()> {
    if args.kl_divergence {
        let base = args
            .kl_divergence_base
            .as_deref()
            .context("--kl-divergence needs --kl-divergence-base FILE to compare with")?;
        return kl_divergence(&args, base);
    }
    let file = args
        .file
        .as_deref()
        .context("give the text to score with -f FILE")?;
    if let Some(base) = &args.kl_divergence_base {
        if std::path::Path::new(base).exists() {
            bail!("--kl-divergence-base {base}: the file exists; sluice does not overwrite it (remove it or choose another name)");
        }
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("-f {file}"))?;
    let loaded = crate::load::load(
        &args.model,
        crate::load::threads(args.threads),
        args.no_mmap,
    )?;
    let tok = &loaded.tokenizer;
    let tokens = tok.encode(&text, true, true);
    let n_ctx = args.ctx_size;
    if n_ctx < 8 {
        bail!("--ctx-size {n_ctx}: perplexity needs at least 8 tokens per chunk");
    }
    if tokens.len() < 2 * n_ctx {
        bail!(
            "{file} tokenizes to {} tokens; a context of {n_ctx} needs at least {}",
            tokens.len(),
            2 * n_ctx
        );
    }
    let max_chunks = tokens.len() / n_ctx;
    let n_chunk = if args.chunks < 0 {
        max_chunks
    } else {
        (args.chunks as usize).min(max_chunks)
    };
    let first = n_ctx / 2;
    let n_vocab = loaded.model.n_vocab;
    let mut base_out = match &args.kl_divergence_base {
        Some(path) => {
            let mut f = std::fs::File::create_new(path)
                .with_context(|| format!("--kl-divergence-base {path}"))?;
            let header = BaseHeader {
                n_ctx,
                n_vocab,
                n_chunk,
                tokens: tokens[..n_chunk * n_ctx].to_vec(),
            };
            f.write_all(&header.to_bytes())?;
            Some(std::io::BufWriter::new(f))
        }
        None => None,
    };
    eprintln!("perplexity: calculating perplexity over {n_chunk} chunks, n_ctx={n_ctx}");
    let (mut sum, mut sum2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut row = vec![0u16; row_u16(n_vocab)];
    for c in 0..n_chunk {
        let logits = eval_chunk(&loaded, &tokens[c * n_ctx..(c + 1) * n_ctx], first)?;
        for (i, pos) in (first..n_ctx - 1).enumerate() {
            let target = tokens[c * n_ctx + pos + 1] as usize;
            let l = &logits[i * n_vocab..(i + 1) * n_vocab];
            let v = match &mut base_out {
                Some(w) => {
                    let v = compress_row(l, target, &mut row);
                    w.write_all(
                        &row.iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    )?;
                    v
                }
                None => nll(l, target),
            };
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        print!("[{}]{:.4},", c + 1, (sum / count as f64).exp());
        std::io::stdout().flush()?;
    }
    println!();
    if let Some(mut w) = base_out {
        w.flush()?;
    }
    let mean = sum / count as f64;
    let ppl = mean.exp();
    let var = sum2 / count as f64 - mean * mean;
    let unc = if var > 0.0 {
        (var / (count as f64 - 1.0)).sqrt() * ppl
    } else {
        0.0
    };
    println!("Final estimate: PPL = {ppl:.4} +/- {unc:.5}");
    Ok(())
}

/// Logits of positions `first..` of one chunk evaluated from an empty cache, its first token
/// replaced by BOS when the vocabulary adds one.
fn eval_chunk(loaded: &crate::load::Loaded, chunk: &[u32], first: usize) -> Result<Vec<f32>> {
    let mut input = chunk.to_vec();
    if loaded.tokenizer.add_bos() {
        if let Some(bos) = loaded.tokenizer.bos() {
            input[0] = bos;
        }
    }
    let mut session = loaded
        .model
        .session(chunk.len(), GgmlType::F16, GgmlType::F16)?;
    Ok(block_on(session.eval(&input, Logits::From(first)))?)
}

fn kl_divergence(args: &PerplexityArgs, base_path: &str) -> Result<()> {
    let mut f = std::fs::File::open(base_path)
        .with_context(|| format!("--kl-divergence-base {base_path}"))?;
    let file_len = f.metadata()?.len();
    let mut head = vec![0u8; 20];
    f.read_exact(&mut head)
        .with_context(|| format!("{base_path}: too short for a logits file"))?;
    let word =
        |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as u64;
    let head_len = 20 + 4 * word(8).saturating_mul(word(16));
    if head_len > file_len {
        bail!(
            "{base_path}: header claims {} tokens, more than the file holds",
            word(8).saturating_mul(word(16))
        );
    }
    head.resize(head_len as usize, 0);
    f.read_exact(&mut head[20..])?;
    let (header, _) = BaseHeader::parse(base_path, &head, file_len)?;
    let loaded = crate::load::load(
        &args.model,
        crate::load::threads(args.threads),
        args.no_mmap,
    )?;
    let n_vocab = loaded.model.n_vocab;
    if header.n_vocab != n_vocab {
        bail!(
            "{base_path}: base vocabulary has {} tokens, the model {n_vocab}",
            header.n_vocab
        );
    }
    let (n_ctx, first) = (header.n_ctx, header.n_ctx / 2);
    let nv = row_u16(n_vocab);
    let mut chunk_buf = vec![0u8; header.chunk_bytes()];
    let mut stats = KlStats::default();
    eprintln!(
        "kl_divergence: computing over {} chunks, n_ctx={n_ctx}",
        header.n_chunk
    );
    println!("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
    for c in 0..header.n_chunk {
        f.read_exact(&mut chunk_buf)
            .with_context(|| format!("{base_path}: reading chunk {}", c + 1))?;
        let rows: Vec<u16> = chunk_buf
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let tokens = &header.tokens[c * n_ctx..(c + 1) * n_ctx];
        let logits = eval_chunk(&loaded, tokens, first)?;
        for (i, pos) in (first..n_ctx - 1).enumerate() {
            stats.add(
                &logits[i * n_vocab..(i + 1) * n_vocab],
                &rows[i * nv..(i + 1) * nv],
                tokens[pos + 1] as usize,
            );
        }
        let (lp, _) = KlStats::mean_unc(stats.sum_nll, stats.sum_nll2, stats.count);
        let (lb, _) = KlStats::mean_unc(stats.sum_nll_base, stats.sum_nll_base2, stats.count);
        let (kl, klu) = stats.mean_kld();
        let (mse, _) = KlStats::mean_unc(stats.sum_p_diff2, stats.sum_p_diff4, stats.count);
        println!(
            "{:4}    {:9.4}    {:10.5}    {:10.5} ± {:10.5}    {:6.3} %    {:6.3} %",
            c + 1,
            lp.exp(),
            lp - lb,
            kl,
            klu,
            100.0 * mse.sqrt(),
            100.0 * stats.same_top_fraction()
        );
    }
    let mut kld = stats.kld_values.clone();
    kld.sort_by(f32::total_cmp);
    let (kl, klu) = stats.mean_kld();
    println!("\n====== KL divergence statistics ======");
    println!("Mean    KLD: {kl:10.6} ± {klu:10.6}");
    println!("Maximum KLD: {:10.6}", kld.last().copied().unwrap_or(0.0));
    println!("99.9%   KLD: {:10.6}", percentile(&kld, 0.999));
    println!("99.0%   KLD: {:10.6}", percentile(&kld, 0.990));
    println!("Median  KLD: {:10.6}", percentile(&kld, 0.5));
    println!("Minimum KLD: {:10.6}", kld.first().copied().unwrap_or(0.0));
    let same = stats.same_top_fraction();
    println!(
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * same,
        100.0 * (same * (1.0 - same) / (stats.count as f64 - 1.0).max(1.0)).sqrt()
    );
    Ok(())
}
