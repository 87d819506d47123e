//! Native pieces of the sluice CLI that tests reuse: opening files (memory maps), the
//! subcommands, JSON output.

pub mod cmd;
pub mod json;
pub mod open;

/// Whether an error is a closed stdout (`sluice info x | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
