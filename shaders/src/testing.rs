//! Test support: getting a device under the project's no-silent-skip rule.
//!
//! GPU tests never pass by skipping. Without an adapter a test fails under `CI=true`; outside
//! CI it fails too, with a loud message, unless `SLUICE_ALLOW_NO_GPU=1` is set (then the test
//! returns early after printing why).

use crate::{GpuOptions, WgpuBackend};

/// A backend for a test, or `None` when there is no adapter and the environment allows that.
/// Panics (failing the test) when there is no adapter and it does not.
#[cfg(not(target_arch = "wasm32"))]
pub fn backend_or_fail(opts: GpuOptions) -> Option<WgpuBackend> {
    match sluice_core::source::block_on(WgpuBackend::new(opts)) {
        Ok(b) => Some(b),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let allowed = std::env::var("SLUICE_ALLOW_NO_GPU").is_ok_and(|v| v == "1");
            let msg = format!(
                "\n**********************************************************************\n\
                 NO GPU ADAPTER: {e}\n\
                 Install a Vulkan driver (software: apt-get install mesa-vulkan-drivers \
                 libvulkan1),\nor set SLUICE_ALLOW_NO_GPU=1 to let GPU tests pass without \
                 running (never in CI).\n\
                 **********************************************************************"
            );
            if ci || !allowed {
                panic!("{msg}");
            }
            eprintln!("{msg}\nSLUICE_ALLOW_NO_GPU=1: this GPU test did not run.");
            None
        }
    }
}
