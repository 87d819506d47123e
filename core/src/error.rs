//! The one error type of sluice-core.
//!
//! Every error that comes from bad input names where the problem is: the file, the byte
//! offset and the field being read. Callers above core add context (a flag name, a URL) by
//! wrapping, never by string-matching.

use std::fmt;

/// Result alias used throughout sluice-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in which file a malformed value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub offset: u64,
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: at byte offset {} ({})",
            self.file, self.offset, self.field
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes of a file do not form what they claim to be.
    #[error("{at}: {msg}")]
    Format { at: Location, msg: String },

    /// Reading from a byte source failed (I/O, network, short read).
    #[error("{source_name}: {msg}")]
    Io { source_name: String, msg: String },

    /// The data is well-formed but uses something sluice does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A model file is well-formed GGUF but not a usable model (missing key or tensor,
    /// inconsistent shapes, ...).
    #[error("model: {0}")]
    Model(String),

    /// A caller passed an invalid argument (flag value, option, size).
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The context window is full; generation cannot continue without a new context.
    #[error("context full: {0}")]
    ContextFull(String),
}

impl Error {
    /// A format error at `offset` of `file` while reading `field`.
    pub fn format(
        file: impl Into<String>,
        offset: u64,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Format {
            at: Location {
                file: file.into(),
                offset,
                field: field.into(),
            },
            msg: msg.into(),
        }
    }

    pub fn io(source_name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Io {
            source_name: source_name.into(),
            msg: msg.into(),
        }
    }

    pub fn model(msg: impl Into<String>) -> Self {
        Error::Model(msg.into())
    }
}
