//! One module per `sluice` subcommand. Each exposes a clap `Args` struct and a `run`
//! function; `main.rs` only lists them.

pub mod bench;
pub mod devices;
pub mod gguf;
pub mod info;
pub mod manifest;
pub mod perplexity;
pub mod run;
pub mod serve;
