//! Where the model runs: llama.cpp's placement flags read as llama.cpp reads them.
//!
//! - `-ngl/--n-gpu-layers N`: the last N repeating layers on the GPU (llama.cpp offloads from
//!   the end, so the first layers stay next to the CPU-resident input embedding); the output
//!   norm and lm head too when N exceeds the layer count. `all`, `auto` and `-1` mean every
//!   layer. The token embedding always stays on the CPU, as in llama.cpp.
//! - `-ot/--override-tensor REGEX=DEVICE[,…]`: weights whose name the regex matches (anywhere
//!   in the name) go to DEVICE (`CPU`, or `GPU`; llama.cpp's backend names such as `Vulkan0`,
//!   `Metal` or `CUDA0` mean the GPU too); the first matching rule wins.
//! - `--cpu-moe`: every routed expert on the CPU; `--n-cpu-moe N`: those of the first N layers.
//!
//! Everything on one device runs on that backend; a mix runs on the hybrid backend, which moves
//! activations between the devices only where the placement changes.

use anyhow::{bail, Result};
use fancy_regex::Regex;
use sluice_shaders::hybrid::{Device, Placement as HybridPlacement};

/// The placement flags as given.
#[derive(Clone, Debug, Default)]
pub struct PlacementArgs {
    pub n_gpu_layers: Option<String>,
    pub override_tensor: Vec<String>,
    pub cpu_moe: bool,
    pub n_cpu_moe: Option<usize>,
}

/// What the flags ask for, for a model of `n_layer` repeating layers.
pub enum Plan {
    /// Everything on the CPU.
    Cpu,
    /// Everything on the GPU (the wgpu backend alone).
    Gpu,
    /// A mix (the hybrid backend).
    Mixed(Mix),
}

/// A mixed placement: per layer, the output, and the weight rules.
#[derive(Clone, Debug)]
pub struct Mix {
    pub layers: Vec<Device>,
    pub output: Device,
    /// Name patterns in the order they apply (the first match wins).
    pub rules: Vec<(Regex, Device)>,
}

impl Mix {
    /// The device of a weight called `name`.
    pub fn weight_device(&self, name: &str) -> Device {
        if let Some((_, dev)) = self
            .rules
            .iter()
            .find(|(re, _)| re.is_match(name).unwrap_or(false))
        {
            return *dev;
        }
        if let Some(layer) = layer_of(name) {
            return self.layers.get(layer).copied().unwrap_or(Device::Cpu);
        }
        if name.starts_with("token_embd.") {
            Device::Cpu
        } else {
            self.output
        }
    }

    /// The hybrid backend's placement.
    pub fn to_hybrid(&self) -> HybridPlacement {
        let mix = self.clone();
        HybridPlacement {
            layers: self.layers.clone(),
            output: self.output,
            weight: Box::new(move |name| mix.weight_device(name)),
        }
    }

    /// One line for the log: which layers, and which rules.
    pub fn describe(&self) -> String {
        let gpu: Vec<usize> = (0..self.layers.len())
            .filter(|&l| self.layers[l] == Device::Gpu)
            .collect();
        let layers = match (gpu.first(), gpu.last()) {
            (Some(a), Some(b)) if a == b => format!("layer {a} on the GPU"),
            (Some(a), Some(b)) => format!("layers {a}–{b} on the GPU"),
            _ => "no layer on the GPU".to_string(),
        };
        let rules: Vec<String> = self.rules.iter().map(|(p, d)| format!("{p}={d}")).collect();
        if rules.is_empty() {
            format!("{layers}, output on the {}", self.output)
        } else {
            format!(
                "{layers}, output on the {}; weights matching {}",
                self.output,
                rules.join(", ")
            )
        }
    }
}

fn compiled_rule(pattern: &str, dev: Device) -> Result<(Regex, Device)> {
    Regex::new(pattern)
        .map(|re| (re, dev))
        .map_err(|e| anyhow::anyhow!("--override-tensor {pattern}: not a valid regex: {e}"))
}

/// `blk.N.` → N.
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

/// A device name in an `-ot` rule.
fn device(name: &str, rule: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    let base = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    match base {
        "cpu" => Ok(Device::Cpu),
        "gpu" | "vulkan" | "metal" | "dx12" | "webgpu" | "cuda" | "rocm" => Ok(Device::Gpu),
        _ => bail!(
            "--override-tensor {rule}: unknown device {name:?} (use CPU or GPU; llama.cpp's Vulkan0, Metal and CUDA0 also mean the GPU)"
        ),
    }
}

/// The number of GPU layers `-ngl` asks for (`usize::MAX`: all).
fn gpu_layers(flag: Option<&str>) -> Result<usize> {
    let Some(flag) = flag else { return Ok(0) };
    Ok(match flag.trim() {
        "all" | "auto" | "-1" => usize::MAX,
        t => match t.parse::<i64>() {
            Ok(v) if v >= 0 => v as usize,
            _ => bail!("--n-gpu-layers {flag}: not a layer count (give a number, or all)"),
        },
    })
}

/// Reads the flags for a model of `n_layer` repeating layers.
pub fn plan(args: &PlacementArgs, n_layer: usize) -> Result<Plan> {
    let ngl = gpu_layers(args.n_gpu_layers.as_deref())?;
    let mut rules = Vec::new();
    for flag in &args.override_tensor {
        for rule in flag.split(',').filter(|r| !r.trim().is_empty()) {
            let Some((pattern, dev)) = rule.rsplit_once('=') else {
                bail!("--override-tensor {rule}: expected PATTERN=DEVICE (for example exps=CPU)");
            };
            rules.push(compiled_rule(pattern, device(dev, rule)?)?);
        }
    }
    if args.cpu_moe {
        rules.push(compiled_rule(r"\.ffn_(up|down|gate)_exps", Device::Cpu)?);
    }
    if let Some(n) = args.n_cpu_moe {
        for l in 0..n.min(n_layer) {
            rules.push(compiled_rule(
                &format!(r"blk\.{l}\.ffn_(up|down|gate)_exps"),
                Device::Cpu,
            )?);
        }
    }
    let first_gpu = n_layer.saturating_sub(ngl);
    let layers: Vec<Device> = (0..n_layer)
        .map(|l| {
            if l >= first_gpu {
                Device::Gpu
            } else {
                Device::Cpu
            }
        })
        .collect();
    let output = if ngl > n_layer {
        Device::Gpu
    } else {
        Device::Cpu
    };
    let any_gpu_rule = rules.iter().any(|(_, d)| *d == Device::Gpu);
    let any_cpu_rule = rules.iter().any(|(_, d)| *d == Device::Cpu);
    Ok(if ngl == 0 && !any_gpu_rule {
        Plan::Cpu
    } else if ngl > n_layer && !any_cpu_rule {
        Plan::Gpu
    } else {
        Plan::Mixed(Mix {
            layers,
            output,
            rules,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ngl: Option<&str>) -> PlacementArgs {
        PlacementArgs {
            n_gpu_layers: ngl.map(str::to_string),
            ..Default::default()
        }
    }

    fn mix(p: Plan) -> Mix {
        match p {
            Plan::Mixed(m) => m,
            _ => panic!("expected a mixed placement"),
        }
    }

    #[test]
    fn n_gpu_layers_as_llama_cpp_reads_it() {
        assert!(matches!(plan(&args(None), 61).unwrap(), Plan::Cpu));
        assert!(matches!(plan(&args(Some("0")), 61).unwrap(), Plan::Cpu));
        for all in ["99", "62", "all", "auto", "-1"] {
            assert!(
                matches!(plan(&args(Some(all)), 61).unwrap(), Plan::Gpu),
                "{all}"
            );
        }
        // -ngl 61 of 61: every repeating layer, but not the output.
        let m = mix(plan(&args(Some("61")), 61).unwrap());
        assert!(m.layers.iter().all(|d| *d == Device::Gpu));
        assert_eq!(m.output, Device::Cpu);
        // -ngl 2: the last two layers.
        let m = mix(plan(&args(Some("2")), 5).unwrap());
        assert_eq!(
            m.layers,
            [
                Device::Cpu,
                Device::Cpu,
                Device::Cpu,
                Device::Gpu,
                Device::Gpu
            ]
        );
        assert_eq!(m.weight_device("blk.4.attn_q_a.weight"), Device::Gpu);
        assert_eq!(m.weight_device("blk.1.attn_q_a.weight"), Device::Cpu);
        assert_eq!(m.weight_device("token_embd.weight"), Device::Cpu);
        assert_eq!(m.weight_device("output.weight"), Device::Cpu);
        assert!(plan(&args(Some("x")), 61).is_err());
    }

    #[test]
    fn cpu_moe_and_overrides() {
        let a = PlacementArgs {
            n_gpu_layers: Some("99".into()),
            cpu_moe: true,
            ..Default::default()
        };
        let m = mix(plan(&a, 3).unwrap());
        assert_eq!(m.output, Device::Gpu);
        assert_eq!(
            m.weight_device("blk.2.ffn_down_exps.weight expert 7"),
            Device::Cpu
        );
        assert_eq!(m.weight_device("blk.2.ffn_down_shexp.weight"), Device::Gpu);
        let a = PlacementArgs {
            n_gpu_layers: Some("99".into()),
            n_cpu_moe: Some(2),
            ..Default::default()
        };
        let m = mix(plan(&a, 3).unwrap());
        assert_eq!(m.weight_device("blk.1.ffn_up_exps.weight"), Device::Cpu);
        assert_eq!(m.weight_device("blk.2.ffn_up_exps.weight"), Device::Gpu);
        // -ot: first rule wins; llama.cpp's backend names; bad input named.
        let a = PlacementArgs {
            n_gpu_layers: Some("0".into()),
            override_tensor: vec!["attn=Vulkan0,blk\\.0\\.=CPU".into()],
            ..Default::default()
        };
        let m = mix(plan(&a, 3).unwrap());
        assert_eq!(m.weight_device("blk.0.attn_q_a.weight"), Device::Gpu);
        assert_eq!(m.weight_device("blk.0.ffn_up.weight"), Device::Cpu);
        for bad in ["exps", "exps=TPU", "(=CPU"] {
            let a = PlacementArgs {
                override_tensor: vec![bad.into()],
                ..Default::default()
            };
            let e = plan(&a, 3).err().expect(bad).to_string();
            assert!(e.contains("--override-tensor"), "{e}");
        }
    }
}
