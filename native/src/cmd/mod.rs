//! One module per `sluice` subcommand: its clap arguments and its `run`.

pub mod info;
pub mod manifest;
pub mod serve;
