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
    #[command(flatten)]
    pub experts: crate::expert_cache::ExpertCacheArgs,
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
    let loaded = crate::load::load_with(
        &args.model,
        crate::load::threads(args.threads),
        args.no_mmap,
        &args.experts,
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
    let n_vocab = loaded.model.n_vocab;
    let mut base_out = match &args.kl_divergence_base {
        Some(path) => {
            let mut f = std::fs::File::create_new(path)
                .with_context(|| format!("--kl-divergence-base {path}"))?;
            f.write_all(&base_header(&tokens, n_ctx, n_vocab, n_chunk).to_bytes())?;
            Some(std::io::BufWriter::new(f))
        }
        None => None,
    };
    eprintln!("perplexity: calculating perplexity over {n_chunk} chunks, n_ctx={n_ctx}");
    let mut stdout = std::io::stdout();
    let result = score(
        &loaded,
        &tokens,
        n_ctx,
        n_chunk,
        base_out.as_mut().map(|w| w as &mut dyn Write),
        &mut |c, ppl| {
            print!("[{c}]{ppl:.4},");
            let _ = stdout.flush();
        },
    )?;
    println!();
    if let Some(mut w) = base_out {
        w.flush()?;
    }
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl, result.uncertainty
    );
    report_experts(&loaded);
    Ok(())
}

/// Perplexity of a text and its standard error, as llama-perplexity reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    pub ppl: f64,
    pub uncertainty: f64,
}

/// The header of a base file for the first `n_chunk` chunks of `tokens`; the rows follow,
/// written by [`score`].
pub fn base_header(tokens: &[u32], n_ctx: usize, n_vocab: usize, n_chunk: usize) -> BaseHeader {
    BaseHeader {
        n_ctx,
        n_vocab,
        n_chunk,
        tokens: tokens[..n_chunk * n_ctx].to_vec(),
    }
}

/// Scores the first `n_chunk` chunks of `n_ctx` tokens; writes the base rows to `base` when
/// given; calls `progress(chunk, running_ppl)` after each chunk.
pub fn score(
    loaded: &crate::load::Loaded,
    tokens: &[u32],
    n_ctx: usize,
    n_chunk: usize,
    mut base: Option<&mut dyn Write>,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Perplexity> {
    let first = n_ctx / 2;
    let n_vocab = loaded.model.n_vocab;
    let (mut sum, mut sum2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut row = vec![0u16; row_u16(n_vocab)];
    let mut row_bytes = Vec::with_capacity(row.len() * 2);
    for c in 0..n_chunk {
        let logits = eval_chunk(loaded, &tokens[c * n_ctx..(c + 1) * n_ctx], first)?;
        for (i, pos) in (first..n_ctx - 1).enumerate() {
            let target = tokens[c * n_ctx + pos + 1] as usize;
            let l = &logits[i * n_vocab..(i + 1) * n_vocab];
            let v = match base.as_mut() {
                Some(w) => {
                    let v = compress_row(l, target, &mut row);
                    row_bytes.clear();
                    row_bytes.extend(row.iter().flat_map(|v| v.to_le_bytes()));
                    w.write_all(&row_bytes)?;
                    v
                }
                None => nll(l, target),
            };
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        progress(c + 1, (sum / count as f64).exp());
    }
    let mean = sum / count as f64;
    let ppl = mean.exp();
    let var = sum2 / count as f64 - mean * mean;
    let uncertainty = if var > 0.0 {
        (var / (count as f64 - 1.0)).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity { ppl, uncertainty })
}

/// The expert store's summary line on stderr, when experts were streamed.
fn report_experts(loaded: &crate::load::Loaded) {
    if loaded.streaming {
        eprintln!(
            "{}",
            crate::expert_cache::summary(&loaded.model.expert_stats())
        );
    }
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

/// An open base-logits file: its header, positioned at the first chunk's rows.
pub struct BaseFile {
    pub path: String,
    pub header: BaseHeader,
    file: std::fs::File,
}

impl BaseFile {
    /// Opens and checks a base file (sizes are checked against the file before any
    /// allocation).
    pub fn open(path: &str) -> Result<Self> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("--kl-divergence-base {path}"))?;
        let file_len = file.metadata()?.len();
        let mut head = vec![0u8; 20];
        file.read_exact(&mut head)
            .with_context(|| format!("{path}: too short for a logits file"))?;
        let word = |at: usize| {
            u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as u64
        };
        let head_len = word(8)
            .saturating_mul(word(16))
            .saturating_mul(4)
            .saturating_add(20);
        if head_len > file_len {
            bail!(
                "{path}: header claims {} tokens, more than the file holds",
                word(8).saturating_mul(word(16))
            );
        }
        head.resize(head_len as usize, 0);
        file.read_exact(&mut head[20..])?;
        let (header, _) = BaseHeader::parse(path, &head, file_len)?;
        Ok(Self {
            path: path.to_string(),
            header,
            file,
        })
    }
}

/// Evaluates the base file's chunks with `loaded` and accumulates the KL statistics;
/// `progress(chunk, stats)` runs after each chunk.
pub fn compare(
    loaded: &crate::load::Loaded,
    base: &mut BaseFile,
    progress: &mut dyn FnMut(usize, &KlStats),
) -> Result<KlStats> {
    let n_vocab = loaded.model.n_vocab;
    let header = &base.header;
    if header.n_vocab != n_vocab {
        bail!(
            "{}: base vocabulary has {} tokens, the model {n_vocab}",
            base.path,
            header.n_vocab
        );
    }
    let (n_ctx, first) = (header.n_ctx, header.n_ctx / 2);
    let nv = row_u16(n_vocab);
    let mut chunk_buf = vec![0u8; header.chunk_bytes()];
    let mut rows = vec![0u16; chunk_buf.len() / 2];
    let mut stats = KlStats::default();
    for c in 0..header.n_chunk {
        base.file
            .read_exact(&mut chunk_buf)
            .with_context(|| format!("{}: reading chunk {}", base.path, c + 1))?;
        rows.iter_mut()
            .zip(chunk_buf.chunks_exact(2))
            .for_each(|(r, b)| *r = u16::from_le_bytes([b[0], b[1]]));
        let tokens = &header.tokens[c * n_ctx..(c + 1) * n_ctx];
        let logits = eval_chunk(loaded, tokens, first)?;
        for (i, pos) in (first..n_ctx - 1).enumerate() {
            stats.add(
                &logits[i * n_vocab..(i + 1) * n_vocab],
                &rows[i * nv..(i + 1) * nv],
                tokens[pos + 1] as usize,
            );
        }
        progress(c + 1, &stats);
    }
    Ok(stats)
}

fn kl_divergence(args: &PerplexityArgs, base_path: &str) -> Result<()> {
    let mut base = BaseFile::open(base_path)?;
    let loaded = crate::load::load_with(
        &args.model,
        crate::load::threads(args.threads),
        args.no_mmap,
        &args.experts,
    )?;
    eprintln!(
        "kl_divergence: computing over {} chunks, n_ctx={}",
        base.header.n_chunk, base.header.n_ctx
    );
    println!("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
    let stats = compare(&loaded, &mut base, &mut |c, stats| {
        let (lp, _) = KlStats::mean_unc(stats.sum_nll, stats.sum_nll2, stats.count);
        let (lb, _) = KlStats::mean_unc(stats.sum_nll_base, stats.sum_nll_base2, stats.count);
        let (kl, klu) = stats.mean_kld();
        let (mse, _) = KlStats::mean_unc(stats.sum_p_diff2, stats.sum_p_diff4, stats.count);
        println!(
            "{:4}    {:9.4}    {:10.5}    {:10.5} ± {:10.5}    {:6.3} %    {:6.3} %",
            c,
            lp.exp(),
            lp - lb,
            kl,
            klu,
            100.0 * mse.sqrt(),
            100.0 * stats.same_top_fraction()
        );
    })?;
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
    report_experts(&loaded);
    Ok(())
}
