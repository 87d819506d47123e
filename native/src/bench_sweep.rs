//! Decode speed against expert-cache budget (`--expert-cache-sweep 5%,10%,25%,50%,100%`), the
//! eviction-policy comparison on a recorded routing trace, and an SVG plot of the sweep.
//!
//! Each budget gets a fresh store (a cold cache) over the same opened model; the prompt is
//! evaluated as one batch, then the decode tokens are fed one at a time (teacher-forced, so
//! every budget sees the same inputs and routing) and timed. Counters are those of the decode
//! phase only.

use crate::expert_cache::CacheSize;
use anyhow::{bail, Context, Result};
use sluice_core::cpu::CpuBackend;
use sluice_core::experts::trace::simulate;
use sluice_core::experts::{
    ExpertLayout, PolicyKind, RoutingTrace, StoreStats, StreamingOptions, TracingStore,
};
use sluice_core::gguf::GgufModel;
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use std::fmt::Write;
use std::time::Instant;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub budgets: Vec<CacheSize>,
    pub threads: usize,
    pub prefetch: bool,
    /// Evaluated as one batch before timing.
    pub prompt: Vec<u32>,
    /// Fed one at a time and timed.
    pub decode: Vec<u32>,
}

/// One budget's result.
#[derive(Clone, Debug)]
pub struct SweepRow {
    pub budget: String,
    pub budget_bytes: u64,
    pub tokens_per_s: f64,
    /// Decode steps timed.
    pub decode_tokens: u64,
    /// Decode-phase counters.
    pub stats: StoreStats,
}

/// Parses `5%,10%,25%,4G`.
pub fn parse_budgets(list: &str) -> Result<Vec<CacheSize>> {
    let budgets: Vec<CacheSize> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| CacheSize::parse("--expert-cache-sweep", s))
        .collect::<Result<_>>()?;
    if budgets.is_empty() {
        bail!("--expert-cache-sweep: give budgets, e.g. 5%,10%,25%,50%,100%");
    }
    Ok(budgets)
}

/// Runs the decode benchmark once per budget.
pub fn sweep(gguf: &GgufModel, cfg: &SweepConfig) -> Result<Vec<SweepRow>> {
    let layout = ExpertLayout::from_model(gguf)?;
    if !layout.has_experts() {
        bail!("the model has no routed experts to cache");
    }
    let mut rows = Vec::new();
    for b in &cfg.budgets {
        let bytes = b.resolve(layout.total_bytes());
        let options = StreamingOptions {
            backend_budget: bytes,
            prefetch: cfg.prefetch,
            ..Default::default()
        };
        let model = crate::load::build_model(gguf, cfg.threads, Some(options))
            .with_context(|| format!("budget {}", b.label()))?;
        let (tokens_per_s, stats) = decode(&model, cfg)?;
        rows.push(SweepRow {
            budget: b.label(),
            budget_bytes: bytes,
            tokens_per_s,
            decode_tokens: cfg.decode.len() as u64,
            stats,
        });
    }
    Ok(rows)
}

/// Prompt, then timed one-token steps; tokens/s and the decode-phase counters.
fn decode(model: &Model<CpuBackend>, cfg: &SweepConfig) -> Result<(f64, StoreStats)> {
    let n_ctx = cfg.prompt.len() + cfg.decode.len() + 1;
    let mut session = model.session(n_ctx, GgmlType::F16, GgmlType::F16)?;
    if !cfg.prompt.is_empty() {
        block_on(session.eval(&cfg.prompt, Logits::Last))?;
    }
    let before = model.expert_stats();
    let t0 = Instant::now();
    for &t in &cfg.decode {
        block_on(session.eval(&[t], Logits::Last))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let stats = model.expert_stats().since(&before);
    Ok((cfg.decode.len() as f64 / secs.max(1e-9), stats))
}

/// Records the routing (and next-layer predictions) of a resident run over the same tokens.
pub fn record_trace(gguf: &GgufModel, cfg: &SweepConfig) -> Result<RoutingTrace> {
    // A store that keeps nothing: memory stays flat whatever the model's size.
    let store = sluice_core::experts::StreamingExperts::<CpuBackend>::from_model(
        gguf,
        StreamingOptions {
            backend_budget: 0,
            prefetch: false,
            ..Default::default()
        },
    )?;
    let (tracing, trace) = TracingStore::new(store, true);
    let opts = LoadOptions {
        expert_store: Some(Box::new(tracing)),
        ..Default::default()
    };
    let model = block_on(Model::load(gguf, CpuBackend::new(cfg.threads)?, opts))?;
    let mut session = model.session(
        cfg.prompt.len() + cfg.decode.len() + 1,
        GgmlType::F16,
        GgmlType::F16,
    )?;
    if !cfg.prompt.is_empty() {
        block_on(session.eval(&cfg.prompt, Logits::Last))?;
    }
    trace.borrow_mut().events.clear();
    for &t in &cfg.decode {
        block_on(session.eval(&[t], Logits::Last))?;
    }
    let out = trace.borrow().clone();
    Ok(out)
}

/// Hit rates of `policies` replaying `trace` at each budget (rows: policies).
pub fn compare_policies(
    trace: &RoutingTrace,
    layout: &ExpertLayout,
    budgets: &[CacheSize],
    policies: &[PolicyKind],
) -> String {
    let mut s = String::from("| policy |");
    for b in budgets {
        let _ = write!(s, " {} |", b.label());
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(budgets.len()));
    s.push('\n');
    for p in policies {
        let _ = write!(s, "| {} |", p.label());
        for b in budgets {
            let r = simulate(
                trace,
                &|l| layout.expert_bytes(l),
                b.resolve(layout.total_bytes()),
                *p,
            );
            let _ = write!(s, " {:.1}% |", 100.0 * r.hit_rate());
        }
        s.push('\n');
    }
    s
}

/// The sweep as a Markdown table.
pub fn table(rows: &[SweepRow]) -> String {
    let mut s = String::from(
        "| budget | bytes | tokens/s | hit rate | cache hits | prefetch accuracy | MB read/token | stall ms/token |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let per_token = |v: f64| v / r.decode_tokens.max(1) as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.1}% | {:.1}% | {:.1}% | {:.1} | {:.0} |",
            r.budget,
            crate::expert_cache::gib(r.budget_bytes),
            r.tokens_per_s,
            100.0 * r.stats.hit_rate(),
            100.0 * r.stats.cache_hit_rate(),
            100.0 * r.stats.prefetch_accuracy(),
            per_token(r.stats.bytes_read as f64 / 1e6),
            per_token(r.stats.stall_ms),
        );
    }
    s
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line chart of tokens/s (left axis) and hit rate (right axis) against the budget.
pub fn svg(rows: &[SweepRow], title: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    let (left, right, top, bottom) = (70.0, 70.0, 66.0, 60.0);
    let (pw, ph) = (W - left - right, H - top - bottom);
    let max_tps = rows
        .iter()
        .map(|r| r.tokens_per_s)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let tps_top = nice_ceiling(max_tps * 1.1);
    let n = rows.len().max(1);
    let x_at = |i: usize| {
        if n == 1 {
            left + pw / 2.0
        } else {
            left + pw * i as f64 / (n - 1) as f64
        }
    };
    let y_tps = |v: f64| top + ph * (1.0 - v / tps_top);
    let y_hit = |v: f64| top + ph * (1.0 - v);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        W / 2.0,
        xml(title)
    );
    // Grid and axis ticks: five steps on both axes.
    for k in 0..=5 {
        let f = k as f64 / 5.0;
        let y = top + ph * (1.0 - f);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            left + pw
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f77b4">{}</text>"##,
            left - 8.0,
            y + 4.0,
            fmt_tick(tps_top * f)
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="start" fill="#d62728">{:.0}%</text>"##,
            left + pw + 8.0,
            y + 4.0,
            100.0 * f
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x_at(i),
            top + ph + 20.0,
            xml(&r.budget)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">expert-cache budget (share of all expert bytes)</text>"#,
        left + pw / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle" fill="#1f77b4">decode tokens/s</text>"##,
        top + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text transform="translate({:.1} {:.1}) rotate(90)" text-anchor="middle" fill="#d62728">hit rate</text>"##,
        W - 16.0,
        top + ph / 2.0
    );
    let series = [
        (
            "#1f77b4",
            rows.iter()
                .map(|r| y_tps(r.tokens_per_s))
                .collect::<Vec<_>>(),
        ),
        (
            "#d62728",
            rows.iter().map(|r| y_hit(r.stats.hit_rate())).collect(),
        ),
    ];
    for (color, ys) in &series {
        let points: Vec<String> = ys
            .iter()
            .enumerate()
            .map(|(i, y)| format!("{:.1},{y:.1}", x_at(i)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"/>"#,
            points.join(" ")
        );
        for (i, y) in ys.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#,
                x_at(i)
            );
        }
    }
    // Legend, above the plot so it never hides a line.
    for (k, (color, label)) in [
        ("#1f77b4", "decode tokens/s (left)"),
        ("#d62728", "hit rate (right)"),
    ]
    .iter()
    .enumerate()
    {
        let x = left + 220.0 * k as f64;
        let y = top - 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2.5"/>"#,
            x + 30.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{label}</text>"#,
            x + 38.0,
            y + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn fmt_tick(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(budget: &str, tps: f64, hits: u64, misses: u64) -> SweepRow {
        SweepRow {
            budget: budget.into(),
            budget_bytes: 1 << 30,
            tokens_per_s: tps,
            decode_tokens: 10,
            stats: StoreStats {
                hits,
                misses,
                bytes_read: misses * 1_000_000,
                ..Default::default()
            },
        }
    }

    #[test]
    fn table_and_plot() {
        let rows = vec![
            row("5%", 0.5, 1, 9),
            row("50%", 2.0, 5, 5),
            row("100%", 4.0, 9, 1),
        ];
        let t = table(&rows);
        assert!(t.contains("| 50% | 1.00 GiB | 2.00 | 50.0% |"), "{t}");
        assert!(t.contains("| 0.9 |"), "MB/token of the 5% row: {t}");
        let svg = svg(&rows, "tiny <model>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("tiny &lt;model&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        for label in ["decode tokens/s", "hit rate", "5%", "100%"] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(nice_ceiling(4.4), 5.0);
        assert_eq!(nice_ceiling(0.33), 0.5);
        assert!(parse_budgets("5%,10%, 4G").unwrap().len() == 3);
        assert!(parse_budgets("").is_err());
    }
}
