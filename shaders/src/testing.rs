//! Test support: getting a device under the project's no-silent-skip rule.
//!
//! GPU tests never pass by skipping. Without an adapter a test fails under `CI=true`; outside
//! CI it fails too, with a loud message, unless `SLUICE_ALLOW_NO_GPU=1` is set (then the test
//! returns early after printing why). Tests in one process take turns on the device: a
//! software adapter (lavapipe) already uses every core, and concurrent tests only thrash.

use crate::gpu::Gpu;
use crate::{GpuOptions, WgpuBackend};
use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard};

static DEVICE: Mutex<()> = Mutex::new(());

thread_local! {
    /// The device turn held by this thread until it exits (libtest runs each test on its own
    /// thread, or all on one when single-threaded).
    static TURN: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// Waits until no other test thread of this process uses the device.
pub fn take_device_turn() {
    TURN.with(|t| {
        if t.borrow().is_none() {
            let guard = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
            *t.borrow_mut() = Some(guard);
        }
    });
}

/// Devices opened so far, by options: a test process opens each kind once (drivers run out
/// of devices when every model load opens its own).
static OPENED: Mutex<Vec<(String, Gpu)>> = Mutex::new(Vec::new());

fn shared_device(opts: &GpuOptions) -> sluice_core::Result<Gpu> {
    let key = format!("{opts:?}");
    let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, gpu)) = opened.iter().find(|(k, _)| *k == key) {
        return Ok(gpu.clone());
    }
    let gpu = sluice_core::source::block_on(Gpu::open(opts))?;
    opened.push((key, gpu.clone()));
    Ok(gpu)
}

/// A backend for a test, or `None` when there is no adapter and the environment allows that.
/// Panics (failing the test) when there is no adapter and it does not.
pub fn backend_or_fail(opts: GpuOptions) -> Option<WgpuBackend> {
    take_device_turn();
    match shared_device(&opts).and_then(WgpuBackend::on) {
        Ok(backend) => Some(backend),
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
