//! HTTP for sluice: a strict range client (model weights over HTTP as a
//! [`ByteSource`](sluice_core::source::ByteSource)) and the `sluice serve` weights host.
//!
//! Both sides are plain HTTP/1.1 over `std::net` with no TLS: the weights host is meant for
//! loopback or a LAN, and anything speaking HTTP ranges (a CDN, an object store) can stand in
//! for it. Sharing one small message module keeps the Range/Content-Range grammar identical
//! on both ends.

pub mod client;
pub mod files;
pub mod listing;
pub mod message;
pub mod plan;
pub mod pool;
pub mod server;
pub mod source;
pub mod url;

pub use client::{HttpConfig, Validator};
pub use source::{fetch_document, HttpOpener, HttpSource, HttpSourceStats};
pub use url::is_http_url;
