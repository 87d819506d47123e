//! Native pieces of the sluice CLI that tests reuse: opening files (memory maps), commands.

pub mod open;
