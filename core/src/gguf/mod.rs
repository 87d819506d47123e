//! The GGUF container: parse (versions 2 and 3), write, and present split files as one model.
//!
//! Parsing works on a prefix of the file held in memory, so any [`crate::source::ByteSource`]
//! can feed it: a memory map hands over everything, a remote source fetches a first chunk and
//! more only if the header turns out longer.

pub mod value;

pub use value::{Metadata, Value, ValueType};
