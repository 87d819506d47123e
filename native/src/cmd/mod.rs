//! The subcommands of `sluice`, one module each.
//!
//! To add a command `foo`: write `cmd/foo.rs` with `pub struct Args` (derives `clap::Args`)
//! and `pub fn run(args: Args) -> anyhow::Result<()>`, then add ONE line to the list at the
//! bottom of this file (its doc comment is the command's help). Nothing else changes: the
//! macro declares the module, the enum variant and the dispatch.

macro_rules! commands {
    ($( $(#[$doc:meta])* $module:ident => $Variant:ident, )*) => {
        $( pub mod $module; )*

        /// Every `sluice` subcommand.
        #[derive(clap::Subcommand)]
        pub enum Command {
            $( $(#[$doc])* $Variant($module::Args), )*
        }

        impl Command {
            /// Runs the chosen subcommand.
            pub fn run(self) -> anyhow::Result<()> {
                match self {
                    $( Command::$Variant(args) => $module::run(args), )*
                }
            }
        }
    };
}

commands! {
    /// Show a GGUF model's metadata, tensors and size per quant type (any part of a split).
    info => Info,
    /// GGUF file tools: split and merge, compatible with llama.cpp's llama-gguf-split.
    gguf => Gguf,
}
