//! sluice-core: everything that does not depend on a GPU API or an OS.
//!
//! It compiles for native targets and for `wasm32-unknown-unknown`. The layers, bottom up:
//! [`source`] (where bytes come from), [`gguf`] (the container), [`quant`] (the ggml block
//! formats), then the model, tokenizer, sampler and the CPU backend built on them.

pub mod cpu;
pub mod error;
pub mod gguf;
pub mod quant;
pub mod source;

pub use error::{Error, Result};
