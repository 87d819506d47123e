//! sluice-core: everything that does not depend on a GPU API or an OS.
//!
//! It compiles for native targets and for `wasm32-unknown-unknown`. The layers, bottom up:
//! [`source`] (where bytes come from), [`gguf`] (the container), [`quant`] (the ggml block
//! formats), [`backend`] (the op interface) with the CPU implementation, [`experts`] (how the
//! model reaches routed experts), [`model`] (the forward passes), and the text side: [`tokenizer`]
//! and [`chat`] templates.

pub mod backend;
pub mod chat;
pub mod cpu;
pub mod error;
pub mod experts;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod perplexity;
pub mod quant;
pub mod sample;
pub mod shapes;
pub mod source;
pub mod tokenizer;

pub use error::{Error, Result};
