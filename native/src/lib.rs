//! Native pieces of the sluice CLI that tests reuse: opening files (memory maps) and URLs
//! (HTTP ranges), the weights host, integrity manifests, commands.

pub mod cmd;
pub mod http;
pub mod manifest;
pub mod open;
