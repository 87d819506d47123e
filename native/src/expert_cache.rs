//! `--expert-cache`, `--gpu-expert-cache`, `--prefetch`: how a command reaches routed experts.
//!
//! * A memory-mapped local file with no budget keeps every expert resident in place (zero
//!   copy; the OS page cache is the cache).
//! * A budget (`--expert-cache 4G`, `512M`, `25%` of all expert bytes) streams experts into
//!   a cache of that size, from the map, the file or the URL.
//! * `--no-mmap` or an `http://` model without a budget streams too, with a default that never
//!   reads a model larger than RAM into RAM: every expert if they fit in half of the memory
//!   this process may use (RAM, or its cgroup's limit) next to the dense weights, else what
//!   does fit. The choice is printed on stderr.
//!
//! On the CPU backend the cache is host RAM (`--expert-cache`); a GPU backend would keep
//! `--gpu-expert-cache` of experts in GPU memory with `--expert-cache` of raw bytes under it.

use anyhow::{bail, Result};
use clap::Args;
use sluice_core::experts::{ExpertLayout, StoreStats, StreamingOptions};
use sluice_core::gguf::GgufModel;

/// Expert-cache flags shared by `run` and `perplexity`.
#[derive(Args, Debug, Clone, Default)]
pub struct ExpertCacheArgs {
    /// Cache routed experts in RAM up to SIZE (4G, 512M, or 25% of all expert bytes),
    /// reading them on demand from the file or URL.
    #[arg(long = "expert-cache", value_name = "SIZE")]
    pub expert_cache: Option<String>,
    /// Routed experts kept in GPU memory (GPU backends; SIZE as for --expert-cache).
    #[arg(long = "gpu-expert-cache", value_name = "SIZE")]
    pub gpu_expert_cache: Option<String>,
    /// Read the next layer's predicted experts ahead of use when streaming: on (default), off.
    #[arg(long = "prefetch", value_name = "on|off")]
    pub prefetch: Option<String>,
}

/// A cache size as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheSize {
    Bytes(u64),
    /// A share (0..=1) of all routed-expert bytes.
    Share(f64),
}

impl CacheSize {
    /// Parses `4G`, `512M`, `1.5GiB`, `300000` (bytes), `25%`.
    pub fn parse(flag: &str, text: &str) -> Result<CacheSize> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{flag} {text}: not a percentage"))?;
            if !(0.0..=100.0).contains(&v) {
                bail!("{flag} {text}: a percentage must be between 0% and 100%");
            }
            return Ok(CacheSize::Share(v / 100.0));
        }
        let upper = t.to_ascii_uppercase();
        let number_end = upper
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(upper.len());
        let (num, unit) = upper.split_at(number_end);
        let scale: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "K" | "KB" | "KIB" => 1024.0,
            "M" | "MB" | "MIB" => 1024.0 * 1024.0,
            "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
            "T" | "TB" | "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => bail!("{flag} {text}: unknown unit {other:?} (use K, M, G, T or %)"),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag} {text}: not a size (examples: 4G, 512M, 25%)"))?;
        Ok(CacheSize::Bytes((v * scale) as u64))
    }

    /// Bytes, given the total bytes of all routed experts.
    pub fn resolve(self, total: u64) -> u64 {
        match self {
            CacheSize::Bytes(b) => b,
            CacheSize::Share(s) => (s * total as f64).round() as u64,
        }
    }

    /// The size as written (`25%`, `4.0 GiB`).
    pub fn label(&self) -> String {
        match self {
            CacheSize::Share(s) => format!("{}%", s * 100.0),
            CacheSize::Bytes(b) => gib(*b),
        }
    }
}

/// `1.50 GiB` / `512.0 MiB`.
pub fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    }
}

/// How the model's bytes are reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A local file mapped into memory.
    Mapped,
    /// Local positioned reads (`--no-mmap`).
    Reads,
    /// HTTP range requests.
    Remote,
}

/// What a command should do with routed experts.
#[derive(Clone, Debug)]
pub enum ExpertPlan {
    /// Every expert in place (memory map) or loaded at start.
    Resident,
    /// Stream through a cache; `note` explains a default choice (print it).
    Streaming {
        options: StreamingOptions,
        note: Option<String>,
    },
}

/// Decides how to reach the experts of `gguf`; `memory` is the RAM this process may use.
pub fn plan(
    args: &ExpertCacheArgs,
    gguf: &GgufModel,
    access: Access,
    memory: u64,
) -> Result<ExpertPlan> {
    let layout = ExpertLayout::from_model(gguf)?;
    let prefetch = match args.prefetch.as_deref().map(str::to_ascii_lowercase) {
        None => true,
        Some(v) if v == "on" => true,
        Some(v) if v == "off" => false,
        Some(v) => bail!("--prefetch {v}: use on or off"),
    };
    let budget = args
        .expert_cache
        .as_deref()
        .map(|s| CacheSize::parse("--expert-cache", s))
        .transpose()?;
    if let Some(g) = &args.gpu_expert_cache {
        CacheSize::parse("--gpu-expert-cache", g)?;
        eprintln!("note: --gpu-expert-cache {g}: experts run on the CPU backend in this build; --expert-cache sizes the cache");
    }
    if !layout.has_experts() {
        if budget.is_some() {
            eprintln!("note: the model has no routed experts; --expert-cache is not used");
        }
        return Ok(ExpertPlan::Resident);
    }
    let total = layout.total_bytes();
    let options = |budget: u64| StreamingOptions {
        backend_budget: budget,
        prefetch,
        ..Default::default()
    };
    if let Some(b) = budget {
        return Ok(ExpertPlan::Streaming {
            options: options(b.resolve(total)),
            note: None,
        });
    }
    if access == Access::Mapped {
        return Ok(ExpertPlan::Resident);
    }
    let model_bytes: u64 = gguf.parts.iter().map(|p| p.source.len()).sum();
    let dense = model_bytes.saturating_sub(total);
    let (chosen, why) = default_budget(total, dense, &layout, memory);
    let how = match access {
        Access::Remote => "over HTTP",
        _ => "with file reads (--no-mmap)",
    };
    Ok(ExpertPlan::Streaming {
        options: options(chosen),
        note: Some(format!(
            "sluice: routed experts ({}) are read {how} on first use into a cache of {} ({why}); \
             set --expert-cache SIZE to change",
            gib(total),
            gib(chosen)
        )),
    })
}

/// The default cache: every expert if they fit in half of `memory` next to the dense
/// weights, else that half minus the dense weights, at least one layer's worth of experts.
fn default_budget(total: u64, dense: u64, layout: &ExpertLayout, memory: u64) -> (u64, String) {
    let half = memory / 2;
    if dense + total <= half {
        return (
            total,
            format!("all experts: the model fits in half of {}", gib(memory)),
        );
    }
    let floor = layout.max_expert_bytes() * layout.k_used as u64 * 2;
    let fit = half.saturating_sub(dense).max(floor).min(total);
    (
        fit,
        format!(
            "{:.0}% of the experts: half of {} minus {} of dense weights",
            100.0 * fit as f64 / total.max(1) as f64,
            gib(memory),
            gib(dense)
        ),
    )
}

/// RAM this process may use: physical memory, or its cgroup's limit when lower.
pub fn usable_memory() -> u64 {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30);
    cgroup_limit().map_or(physical, |c| c.min(physical))
}

/// The memory limit of this process's cgroup (v1 or v2), if one is set.
fn cgroup_limit() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut limits = Vec::new();
    for line in groups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            // "max" (v2) fails to parse; v1 writes a huge page-rounded number for "none".
            if v < (1u64 << 60) {
                limits.push(v);
            }
        }
    }
    limits.into_iter().min()
}

/// The line `run` and `perplexity` print at exit when experts were streamed.
pub fn summary(stats: &StoreStats) -> String {
    format!("sluice: experts: {stats}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let p = |s| CacheSize::parse("--expert-cache", s).unwrap();
        assert_eq!(p("4G"), CacheSize::Bytes(4 << 30));
        assert_eq!(p("512M"), CacheSize::Bytes(512 << 20));
        assert_eq!(p("1.5GiB"), CacheSize::Bytes(3 << 29));
        assert_eq!(p("1000"), CacheSize::Bytes(1000));
        assert_eq!(p("25%"), CacheSize::Share(0.25));
        assert_eq!(p("25%").resolve(1000), 250);
        assert_eq!(p("100%").resolve(999), 999);
        for bad in ["", "G", "4X", "-1G", "150%", "abc%"] {
            let err = CacheSize::parse("--expert-cache", bad)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--expert-cache"), "{bad}: {err}");
        }
    }

    #[test]
    fn memory_is_known() {
        assert!(usable_memory() > 1 << 20);
    }
}
