//! Native pieces of the sluice CLI that tests reuse: opening files (memory maps) and URLs
//! (HTTP ranges), the weights host, integrity manifests, commands.

pub mod bench_sweep;
pub mod chat_loop;
pub mod cmd;
pub mod expert_cache;
pub mod http;
pub mod llama_args;
pub mod load;
pub mod manifest;
pub mod open;
pub mod placement;
pub mod progress;

/// Milliseconds since the first call (the generation loop's clock).
pub fn clock_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}
