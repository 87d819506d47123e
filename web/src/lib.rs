//! sluice-web: load a model from a URL, stream tokens, WebGPU — as a wasm-bindgen module.

use wasm_bindgen::prelude::*;

/// The version of this build, for the demo page's footer.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
