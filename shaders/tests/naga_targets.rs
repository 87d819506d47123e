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

/// Float literals outside f32's finite range: naga rounds them to f32::MAX, but browsers'
/// WGSL compilers (Tint) reject the shader.
fn out_of_range_literals(src: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (n, line) in src.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let starts = bytes[i].is_ascii_digit()
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
            if !starts {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_digit()
                    || matches!(bytes[j], b'.' | b'e' | b'E')
                    || (matches!(bytes[j], b'+' | b'-') && matches!(bytes[j - 1], b'e' | b'E')))
            {
                j += 1;
            }
            let lit = &code[i..j];
            if let Ok(v) = lit.parse::<f64>() {
                if v.is_finite() && v.abs() > f32::MAX as f64 {
                    bad.push(format!("line {}: {lit}", n + 1));
                }
            }
            i = j.max(i + 1);
        }
    }
    bad
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
                let bad = out_of_range_literals(&src);
                if !bad.is_empty() {
                    failures.push(format!("{label}: beyond f32: {}", bad.join(", ")));
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
