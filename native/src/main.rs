//! The `sluice` command line.

fn main() {
    println!("sluice {}", env!("CARGO_PKG_VERSION"));
}
