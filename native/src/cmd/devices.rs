//! `sluice devices`: the GPU adapters this machine offers (what `--n-gpu-layers` would use),
//! with the limits and features the wgpu backend depends on.

use anyhow::Result;

/// List GPU adapters (backend, type, limits, features).
#[derive(clap::Args, Debug)]
pub struct DevicesArgs {}

pub fn run(_args: DevicesArgs) -> Result<()> {
    let adapters = sluice_shaders::gpu::list_adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapters (install a Vulkan, Metal or DX12 driver; the CPU backend still works)"
        );
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "{i}: {} ({}, {}) --device {i} or {}",
            a.name,
            a.backend,
            a.device_type,
            sluice_shaders::gpu::device_name(&adapters, i)
        );
        if !a.driver.is_empty() {
            println!("   driver: {}", a.driver);
        }
        println!(
            "   max buffer {} MiB, max storage binding {} MiB, {} storage buffers per stage",
            a.max_buffer_size >> 20,
            a.max_storage_binding >> 20,
            a.max_storage_buffers
        );
        println!(
            "   shader-f16: {}, subgroups: {}",
            yes(a.shader_f16),
            yes(a.subgroups)
        );
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
