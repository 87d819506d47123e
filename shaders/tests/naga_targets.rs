//! Every composed shader (kernel × format × feature variant × weight split) parses, validates,
//! and translates to SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12) with naga — so a shader that
//! would break on a platform we cannot run here fails on any machine, GPU or not.

use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use sluice_shaders::compose::{all_keys, compose};

fn check(label: &str, src: &str, subgroups: bool) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    // Without subgroups a shader must validate with WebGPU's core capabilities only (what the
    // browser adapter offers); naga lists `unpack2x16float` as a capability, WebGPU does not.
    let core = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    let caps = if subgroups {
        core | Capabilities::SUBGROUP
    } else {
        core
    };
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| e.emit_to_string(src))?;
    spv::write_vec(
        &module,
        &info,
        &spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        },
        None,
    )
    .map_err(|e| format!("SPIR-V: {e}"))?;
    let msl_pipeline = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, "main".into())),
        ..Default::default()
    };
    msl::write_string(
        &module,
        &info,
        &msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        },
        &msl_pipeline,
    )
    .map_err(|e| format!("MSL: {e}"))?;
    let hlsl_options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_0,
        ..Default::default()
    };
    let hlsl_pipeline = hlsl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, "main".into())),
    };
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline)
        .write(&module, &info, None)
        .map_err(|e| format!("HLSL: {e}"))?;
    let _ = label;
    Ok(())
}

#[test]
fn every_shader_translates_to_every_target() {
    let keys = all_keys();
    let mut failures = Vec::new();
    for key in &keys {
        let label = key.label();
        match compose(key) {
            Ok(src) => {
                if let Err(e) = check(&label, &src, key.subgroups) {
                    failures.push(format!("{label}: {e}"));
                }
            }
            Err(e) => failures.push(format!("{label}: compose: {e}")),
        }
    }
    eprintln!("naga: {} shader variants checked", keys.len());
    assert!(
        failures.is_empty(),
        "{} of {} shaders failed:\n{}",
        failures.len(),
        keys.len(),
        failures.join("\n\n")
    );
    // Every format the backend can read is covered by at least one kernel.
    for f in sluice_shaders::formats::FORMATS {
        assert!(
            keys.iter().any(|k| k.quant == Some(f.ty)),
            "{} not covered",
            f.ty
        );
    }
}
