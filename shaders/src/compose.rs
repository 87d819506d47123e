//! Building WGSL modules: a generic kernel composed with a quant format and feature variant.
//!
//! A [`ShaderKey`] names everything a module depends on: the kernel, the weight (or cache)
//! format, how many buffers the weight is split across, and whether subgroup operations are
//! used. [`compose`] turns a key into WGSL text without a device, so the same function feeds
//! the pipeline cache and the naga validation test that translates every variant to SPIR-V,
//! MSL and HLSL.
//!
//! Bindings and the uniform parameter struct are generated from each kernel's [`KernelSpec`]:
//! binding 0 is the parameters, then the spec's buffers in order, then the weight parts, then
//! the lookup grids. The dispatch code passes buffers in spec order and parameters by name
//! (see [`KernelSpec::params_words`]), so no binding number is kept in sync by hand.

use crate::formats::{grid_table, GpuFormat};
use sluice_core::quant::{grids::IQ1_DELTA, GgmlType};
use sluice_core::{Error, Result};
use std::fmt::Write;

/// How a kernel uses a quant format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantRole {
    /// Elementwise and row ops: no format.
    None,
    /// Reads a weight matrix through `dequant4` (split across `parts` bindings).
    Weight,
    /// Reads K and V cache rows through `k_dequant4` / `v_dequant4`.
    Cache,
    /// Writes cache rows through `store_block`.
    Store,
    /// Rounds activations in place through `round_block` (`quant` is the activation format).
    Act,
}

/// A storage binding declared for a kernel.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub name: &'static str,
    pub writable: bool,
    pub ty: &'static str,
}

const fn read(name: &'static str, ty: &'static str) -> Buf {
    Buf {
        name,
        writable: false,
        ty,
    }
}

const fn write(name: &'static str, ty: &'static str) -> Buf {
    Buf {
        name,
        writable: true,
        ty,
    }
}

/// Scalar types of kernel parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P {
    U32,
    F32,
}

/// A parameter value passed at dispatch.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    U(u32),
    F(f32),
}

/// One generic kernel.
pub struct KernelSpec {
    pub name: &'static str,
    source: &'static str,
    /// Invocations per workgroup (1-D; kernels derive 2-D roles from the index).
    pub workgroup: u32,
    params: &'static [(&'static str, P)],
    pub buffers: &'static [Buf],
    pub role: QuantRole,
    /// Uses `wg_sum` / `wg_max` (the only code with a subgroup variant).
    pub reduces: bool,
    /// Uses the weight-product job table.
    jobs: bool,
}

/// Invocations that share one weight row in the matvec kernel (`row_sum`); subgroup variants
/// need subgroups at least this wide.
pub const ROW_THREADS: u32 = 8;

const F32S: &str = "array<f32>";
const U32S: &str = "array<u32>";

/// Every kernel.
pub static KERNELS: &[KernelSpec] = &[
    KernelSpec {
        name: "matvec",
        source: include_str!("wgsl/kernels/matvec.wgsl"),
        workgroup: 64,
        params: &[
            ("rows", P::U32),
            ("cols", P::U32),
            ("row_words", P::U32),
            ("x_stride", P::U32),
            ("y_stride", P::U32),
            ("corr_base", P::U32),
        ],
        buffers: &[read("x", F32S), write("y", F32S), read("host", U32S)],
        role: QuantRole::Weight,
        reduces: true,
        jobs: true,
    },
    KernelSpec {
        name: "matmul",
        source: include_str!("wgsl/kernels/matmul.wgsl"),
        workgroup: 256,
        params: &[
            ("rows", P::U32),
            ("cols", P::U32),
            ("row_words", P::U32),
            ("x_stride", P::U32),
            ("y_stride", P::U32),
            ("corr_base", P::U32),
        ],
        buffers: &[read("x", F32S), write("y", F32S), read("host", U32S)],
        role: QuantRole::Weight,
        reduces: false,
        jobs: true,
    },
    KernelSpec {
        name: "embed",
        source: include_str!("wgsl/kernels/embed.wgsl"),
        workgroup: 64,
        params: &[("cols", P::U32)],
        buffers: &[write("y", F32S), read("host", U32S)],
        role: QuantRole::Weight,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "rms_norm",
        source: include_str!("wgsl/kernels/rms_norm.wgsl"),
        workgroup: 64,
        params: &[
            ("cols", P::U32),
            ("seg_stride", P::U32),
            ("seg_offset", P::U32),
            ("seg_len", P::U32),
            ("eps", P::F32),
        ],
        buffers: &[read("x", F32S), read("w", F32S), write("y", F32S)],
        role: QuantRole::None,
        reduces: true,
        jobs: false,
    },
    KernelSpec {
        name: "rope",
        source: include_str!("wgsl/kernels/rope.wgsl"),
        workgroup: 64,
        params: &[
            ("cols", P::U32),
            ("n_rot", P::U32),
            ("seg_groups", P::U32),
            ("seg_stride", P::U32),
            ("seg_offset", P::U32),
            ("neox", P::U32),
        ],
        buffers: &[write("y", F32S), read("host", U32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "copy_segments",
        source: include_str!("wgsl/kernels/copy_segments.wgsl"),
        workgroup: 64,
        params: &[
            ("len", P::U32),
            ("src_cols", P::U32),
            ("src_stride", P::U32),
            ("src_offset", P::U32),
            ("dst_cols", P::U32),
            ("dst_stride", P::U32),
            ("dst_offset", P::U32),
        ],
        buffers: &[read("x", F32S), write("y", F32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "swiglu",
        source: include_str!("wgsl/kernels/swiglu.wgsl"),
        workgroup: 64,
        params: &[("n", P::U32)],
        buffers: &[read("x", F32S), read("up", F32S), write("y", F32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "add",
        source: include_str!("wgsl/kernels/add.wgsl"),
        workgroup: 64,
        params: &[("n", P::U32)],
        buffers: &[read("x", F32S), write("y", F32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "scale",
        source: include_str!("wgsl/kernels/scale.wgsl"),
        workgroup: 64,
        params: &[("n", P::U32), ("s", P::F32)],
        buffers: &[write("y", F32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "hadamard",
        source: include_str!("wgsl/kernels/hadamard.wgsl"),
        workgroup: 64,
        params: &[("chunks", P::U32), ("len", P::U32), ("s", P::F32)],
        buffers: &[write("y", F32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "moe_combine",
        source: include_str!("wgsl/kernels/moe_combine.wgsl"),
        workgroup: 64,
        params: &[("n", P::U32), ("cols", P::U32), ("k_used", P::U32)],
        buffers: &[read("x", F32S), write("y", F32S), read("host", U32S)],
        role: QuantRole::None,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "cache_store",
        source: include_str!("wgsl/kernels/cache_store.wgsl"),
        workgroup: 64,
        params: &[
            ("cols", P::U32),
            ("row_words", P::U32),
            ("first_row", P::U32),
        ],
        buffers: &[read("x", F32S), write("cache", U32S)],
        role: QuantRole::Store,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "round_act",
        source: include_str!("wgsl/kernels/round_act.wgsl"),
        workgroup: 64,
        params: &[
            ("cols", P::U32),
            ("seg_stride", P::U32),
            ("seg_offset", P::U32),
            ("seg_len", P::U32),
            ("corr_base", P::U32),
        ],
        buffers: &[write("y", F32S)],
        role: QuantRole::Act,
        reduces: false,
        jobs: false,
    },
    KernelSpec {
        name: "attention",
        source: include_str!("wgsl/kernels/attention.wgsl"),
        workgroup: 64,
        params: &[
            ("group", P::U32),
            ("start", P::U32),
            ("q_stride", P::U32),
            ("y_stride", P::U32),
            ("k_row_words", P::U32),
            ("v_row_words", P::U32),
            ("round_q", P::U32),
            ("scale", P::F32),
        ],
        buffers: &[read("x", F32S), write("y", F32S)],
        role: QuantRole::Cache,
        reduces: true,
        jobs: false,
    },
];

impl KernelSpec {
    pub fn get(name: &str) -> Result<&'static KernelSpec> {
        KERNELS
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| Error::Invalid(format!("no GPU kernel named {name}")))
    }

    /// The uniform parameter words, in declaration order, from `(name, value)` pairs; every
    /// declared parameter must be given exactly once with its declared type.
    pub fn params_words(&self, vals: &[(&str, Val)]) -> Result<Vec<u32>> {
        let bad = |msg: String| Error::Invalid(format!("kernel {}: {msg}", self.name));
        if vals.len() != self.params.len() {
            return Err(bad(format!(
                "{} parameters given, {} declared",
                vals.len(),
                self.params.len()
            )));
        }
        self.params
            .iter()
            .map(
                |&(name, ty)| match (vals.iter().find(|(n, _)| *n == name).map(|v| v.1), ty) {
                    (Some(Val::U(u)), P::U32) => Ok(u),
                    (Some(Val::F(f)), P::F32) => Ok(f.to_bits()),
                    (Some(_), _) => Err(bad(format!("parameter {name} has the wrong type"))),
                    (None, _) => Err(bad(format!("parameter {name} is missing"))),
                },
            )
            .collect()
    }
}

/// Everything a composed module depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShaderKey {
    pub kernel: &'static str,
    /// Weight type, K cache type, or stored cache type.
    pub quant: Option<GgmlType>,
    /// V cache type (attention).
    pub quant_v: Option<GgmlType>,
    /// Buffers the weight is bound as (1 unless split).
    pub parts: u32,
    /// Words per weight part are `1 << chunk_shift` (all but the last part are full).
    pub chunk_shift: u32,
    pub subgroups: bool,
    /// Head sizes (K, V) for attention; zero otherwise.
    pub dims: [u32; 2],
}

impl ShaderKey {
    /// A key for a kernel without a format.
    pub fn plain(kernel: &'static str, subgroups: bool) -> Self {
        ShaderKey {
            kernel,
            quant: None,
            quant_v: None,
            parts: 0,
            chunk_shift: 0,
            subgroups,
            dims: [0, 0],
        }
    }

    /// A short label for debuggers and error messages.
    pub fn label(&self) -> String {
        let mut s = self.kernel.to_string();
        for q in [self.quant, self.quant_v].into_iter().flatten() {
            let _ = write!(s, "/{q}");
        }
        if self.parts > 1 {
            let _ = write!(s, "/{}parts", self.parts);
        }
        if self.subgroups {
            s.push_str("/subgroups");
        }
        s
    }
}

const COMMON: &str = include_str!("wgsl/common.wgsl");
const WEIGHT: &str = include_str!("wgsl/weight.wgsl");
const GRIDS: &str = include_str!("wgsl/grids.wgsl");
const REDUCE_SHARED: &str = include_str!("wgsl/reduce_shared.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("wgsl/reduce_subgroup.wgsl");
const JOBS: &str = include_str!("wgsl/kernels/jobs.wgsl");
const STORE_COMMON: &str = include_str!("wgsl/store/common.wgsl");

fn format_of(ty: Option<GgmlType>, key: &ShaderKey) -> Result<&'static GpuFormat> {
    let ty =
        ty.ok_or_else(|| Error::Invalid(format!("shader {} needs a quant format", key.label())))?;
    GpuFormat::of(ty)
        .ok_or_else(|| Error::Unsupported(format!("GPU kernels for {ty} data ({})", key.kernel)))
}

/// The WGSL module for `key`.
pub fn compose(key: &ShaderKey) -> Result<String> {
    let spec = KernelSpec::get(key.kernel)?;
    let mut s = String::with_capacity(16 * 1024);
    if key.subgroups {
        // naga takes subgroup builtins without `enable subgroups;` (which it rejects); the
        // browser path never uses this variant.
        s.push_str("// subgroup variant\n");
    }
    let _ = writeln!(
        s,
        "const WG: u32 = {}u;\nconst ROW_THREADS: u32 = {ROW_THREADS}u;",
        spec.workgroup
    );
    // Parameters and declared buffers.
    s.push_str("struct Params {\n");
    for (name, ty) in spec.params {
        let t = if *ty == P::U32 { "u32" } else { "f32" };
        let _ = writeln!(s, "    {name}: {t},");
    }
    s.push_str("}\n@group(0) @binding(0) var<uniform> p: Params;\n");
    let mut binding = 1;
    for b in spec.buffers {
        let access = if b.writable { "read_write" } else { "read" };
        let _ = writeln!(
            s,
            "@group(0) @binding({binding}) var<storage, {access}> {}: {};",
            b.name, b.ty
        );
        binding += 1;
    }
    s.push_str(COMMON);
    let mut uses_grids = false;
    match spec.role {
        QuantRole::None => {}
        QuantRole::Weight => {
            let f = format_of(key.quant, key)?;
            if key.parts == 0 {
                return Err(Error::Invalid(format!("{}: no weight parts", key.label())));
            }
            weight_bindings(&mut s, "", "w", key.parts, key.chunk_shift, &mut binding);
            s.push_str(&format_source(f));
            uses_grids = f.uses_grids;
        }
        QuantRole::Cache => {
            let (fk, fv) = (format_of(key.quant, key)?, format_of(key.quant_v, key)?);
            let _ = writeln!(
                s,
                "const DK4: u32 = {}u;\nconst DV4: u32 = {}u;",
                key.dims[0] / 4,
                key.dims[1] / 4
            );
            for (prefix, f) in [("k_", fk), ("v_", fv)] {
                let mut part = String::new();
                weight_bindings(
                    &mut part,
                    prefix,
                    &format!("{prefix}cache"),
                    1,
                    0,
                    &mut binding,
                );
                part.push_str(&format_source(f));
                s.push_str(&prefixed(prefix, &part));
                uses_grids |= f.uses_grids;
            }
        }
        QuantRole::Store => {
            let f = format_of(key.quant, key)?;
            let store = f
                .store
                .ok_or_else(|| Error::Unsupported(format!("a KV cache of type {}", f.ty)))?;
            let _ = writeln!(
                s,
                "const STORE_QK: u32 = {}u;\nconst STORE_WORDS: u32 = {}u;",
                f.block_elems(),
                f.block_words()
            );
            s.push_str(STORE_COMMON);
            s.push_str(store);
            uses_grids = f.uses_grids;
        }
        QuantRole::Act => {
            let ty = key.quant.ok_or_else(|| {
                Error::Invalid(format!("shader {} needs an activation format", key.label()))
            })?;
            let src = crate::formats::ACT_FORMATS
                .iter()
                .find(|(t, _)| *t == ty)
                .map(|(_, src)| *src)
                .ok_or_else(|| Error::Unsupported(format!("{ty} activations on the GPU")))?;
            s.push_str(src);
        }
    }
    if uses_grids {
        let _ = writeln!(
            s,
            "@group(0) @binding({binding}) var<storage, read> grids: array<u32>;"
        );
        for (name, at) in grid_table().offsets {
            let _ = writeln!(s, "const {name}: u32 = {at}u;");
        }
        let _ = writeln!(s, "const IQ1_DELTA: f32 = {IQ1_DELTA:?};");
        s.push_str(GRIDS);
    }
    if spec.reduces {
        s.push_str(if key.subgroups {
            REDUCE_SUBGROUP
        } else {
            REDUCE_SHARED
        });
    }
    if spec.jobs {
        s.push_str(JOBS);
    }
    s.push_str(spec.source);
    entry_point(&mut s, key.subgroups && spec.reduces);
    Ok(s)
}

/// The format's constants, helpers and `dequant4`.
fn format_source(f: &GpuFormat) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "const QK: u32 = {}u;\nconst BLOCK_WORDS: u32 = {}u;\nconst CPB: u32 = {}u;",
        f.block_elems(),
        f.block_words(),
        f.block_elems() / 4
    );
    s.push_str(WEIGHT);
    for h in f.helpers {
        s.push_str(h);
    }
    s.push_str(f.source);
    let _ = writeln!(s, "const HAS_MIN: bool = {};", f.has_min());
    if !f.has_min() {
        s.push_str("fn block_min(b: u32) -> f32 {\n    return 0.0;\n}\n");
    }
    s
}

/// Declares `parts` weight buffers `{name}0..` and `{prefix}wload`, which maps a word index
/// onto them (part `i >> chunk_shift`).
fn weight_bindings(
    s: &mut String,
    prefix: &str,
    name: &str,
    parts: u32,
    chunk_shift: u32,
    binding: &mut u32,
) {
    for i in 0..parts {
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> {name}{i}: array<u32>;",
            *binding
        );
        *binding += 1;
    }
    // The prefix is applied later by `prefixed`, so the function is declared unprefixed.
    let _ = prefix;
    if parts == 1 {
        let _ = writeln!(s, "fn wload(i: u32) -> u32 {{\n    return {name}0[i];\n}}");
        return;
    }
    let mask = (1u64 << chunk_shift) - 1;
    let _ = writeln!(
        s,
        "fn wload(i: u32) -> u32 {{\n    let k = i & {mask}u;\n    switch (i >> {chunk_shift}u) {{"
    );
    for i in 0..parts - 1 {
        let _ = writeln!(s, "        case {i}u: {{ return {name}{i}[k]; }}");
    }
    let _ = writeln!(
        s,
        "        default: {{ return {name}{}[k]; }}\n    }}\n}}",
        parts - 1
    );
}

/// Renames the format-level names of a module fragment (functions it defines, `wload`, the
/// weight helpers and the format constants) with `prefix`, so two formats can live in one
/// module. Buffer names and shared helpers are left alone.
fn prefixed(prefix: &str, text: &str) -> String {
    let mut names: Vec<&str> = vec!["QK", "BLOCK_WORDS", "CPB", "HAS_MIN"];
    let mut rest = text;
    while let Some(at) = rest.find("fn ") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        names.push(&after[..end]);
        rest = &after[end..];
    }
    let mut out = String::with_capacity(text.len() + 256);
    let mut ident = String::new();
    let flush = |ident: &mut String, out: &mut String| {
        if names.contains(&ident.as_str()) {
            out.push_str(prefix);
        }
        out.push_str(ident);
        ident.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else {
            flush(&mut ident, &mut out);
            out.push(c);
        }
    }
    flush(&mut ident, &mut out);
    out
}

fn entry_point(s: &mut String, subgroups: bool) {
    s.push_str("\n@compute @workgroup_size(WG)\nfn main(\n");
    s.push_str("    @builtin(local_invocation_index) lid: u32,\n");
    s.push_str("    @builtin(workgroup_id) wid: vec3<u32>,\n");
    if subgroups {
        s.push_str("    @builtin(subgroup_invocation_id) lane: u32,\n");
        s.push_str("    @builtin(subgroup_id) sid: u32,\n");
        s.push_str("    @builtin(num_subgroups) nsg: u32,\n");
        s.push_str(") {\n    sg_lane = lane;\n    sg_id = sid;\n    sg_count = nsg;\n");
    } else {
        s.push_str(") {\n");
    }
    s.push_str("    kernel(lid, wid);\n}\n");
}

/// Every key the backend can build, for validation: each kernel with each format it accepts
/// and each feature variant, weights split or not.
pub fn all_keys() -> Vec<ShaderKey> {
    use crate::formats::FORMATS;
    let mut keys = Vec::new();
    for spec in KERNELS {
        for subgroups in [false, true] {
            if subgroups && !spec.reduces {
                continue;
            }
            let base = ShaderKey::plain(spec.name, subgroups);
            match spec.role {
                QuantRole::None => keys.push(base),
                QuantRole::Weight => {
                    for f in FORMATS {
                        for (parts, shift) in [(1, 0), (3, 10)] {
                            keys.push(ShaderKey {
                                quant: Some(f.ty),
                                parts,
                                chunk_shift: shift,
                                ..base.clone()
                            });
                        }
                    }
                }
                QuantRole::Act => {
                    for (ty, _) in crate::formats::ACT_FORMATS {
                        keys.push(ShaderKey {
                            quant: Some(*ty),
                            ..base.clone()
                        });
                    }
                }
                QuantRole::Store => {
                    for f in FORMATS.iter().filter(|f| f.store.is_some()) {
                        keys.push(ShaderKey {
                            quant: Some(f.ty),
                            ..base.clone()
                        });
                    }
                }
                QuantRole::Cache => {
                    let cache_types: Vec<GgmlType> = FORMATS
                        .iter()
                        .filter(|f| f.store.is_some())
                        .map(|f| f.ty)
                        .collect();
                    for &k in &cache_types {
                        for &v in &cache_types {
                            // DeepSeek-V3's latent cache and a common MHA head size.
                            for dims in [[576, 512], [128, 128]] {
                                keys.push(ShaderKey {
                                    quant: Some(k),
                                    quant_v: Some(v),
                                    parts: 1,
                                    dims,
                                    ..base.clone()
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixing_renames_format_names_only() {
        let src = "fn dequant4(b: u32) -> u32 { return wload(b) + QK + x[0]; }\nfn wload(i: u32) -> u32 { return kc0[i]; }";
        let out = prefixed("k_", src);
        assert!(out.contains("fn k_dequant4"));
        assert!(out.contains("k_wload(b) + k_QK + x[0]"));
        assert!(out.contains("return kc0[i]"));
    }

    #[test]
    fn params_are_checked_by_name_and_type() {
        let spec = KernelSpec::get("scale").unwrap();
        let w = spec
            .params_words(&[("s", Val::F(2.0)), ("n", Val::U(3))])
            .unwrap();
        assert_eq!(w, vec![3, 2.0f32.to_bits()]);
        assert!(spec.params_words(&[("n", Val::U(3))]).is_err());
        assert!(spec
            .params_words(&[("n", Val::F(3.0)), ("s", Val::F(1.0))])
            .is_err());
    }
}
