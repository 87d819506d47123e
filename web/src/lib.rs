//! sluice-web: sluice in the browser, as a wasm-bindgen module.
//!
//! JavaScript sees one class, `Session` ([`session`]): `Session.load(url, options)` opens a
//! GGUF model (any part of a split model) on a weights host by HTTP range requests
//! ([`fetch`]), `generate` runs one chat turn with the CLI's sampling options and streams the
//! tokens, `stop`, `reset` and `stats` do what they say.
//!
//! Memory: the wasm heap has a 4 GiB address space, so model weights are not kept there
//! wholesale. On the CPU path the dense weights (attention, norms, shared experts, embeddings)
//! are held in memory, and routed experts are fetched when the router picks them and kept in a
//! byte-budgeted cache ([`expert_cache`]); a model whose dense part does not fit cannot run on
//! the CPU path. The parts that do not touch the browser ([`engine`], [`expert_cache`],
//! [`http_range`]) build and are tested on native targets too.

pub mod engine;
pub mod expert_cache;
pub mod http_range;
mod join;

#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
pub mod session;

use wasm_bindgen::prelude::*;

/// Installs the panic hook, so a Rust panic shows its message in the console.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The version of this build, for the demo page's footer.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
