//! Row, element-wise, routed-expert, cache and attention ops on the GPU against the CPU
//! backend. Float ops must agree to a normalised MSE of 1e-6.

mod common;

use common::*;
use sluice_core::backend::{
    AttnParams, Backend, CacheSpec, ExpertJob, RopeMode, RopeParams, Segments,
};
use sluice_core::cpu::CpuBackend;
use sluice_core::quant::GgmlType;
use sluice_shaders::testing::backend_or_fail;
use sluice_shaders::{GpuOptions, WgpuBackend};

const FLOAT_BOUND: f64 = 1e-6;

fn gpu() -> Option<WgpuBackend> {
    backend_or_fail(GpuOptions::default())
}

fn cpu() -> CpuBackend {
    CpuBackend::new(1).unwrap()
}

/// Uploads the same data to both backends.
fn pair<G: Backend>(
    g: &G,
    c: &CpuBackend,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> (G::Tensor, <CpuBackend as Backend>::Tensor) {
    (
        g.upload(data, rows, cols).unwrap(),
        c.upload(data, rows, cols).unwrap(),
    )
}

fn assert_close<G: Backend>(
    op: &str,
    g: &G,
    gt: &G::Tensor,
    c: &CpuBackend,
    ct: &<CpuBackend as Backend>::Tensor,
    bound: f64,
) -> f64 {
    let e = nmse(&host(g, gt), &host(c, ct));
    assert!(e <= bound, "{op}: NMSE {e:e} > {bound:e}");
    eprintln!("{op:>28}: NMSE {e:.1e}");
    e
}

#[test]
fn row_and_elementwise_ops_match_cpu() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let mut rng = Rng::new(21);
    let (t, n) = (5, 192);
    let xd = rng.floats(t * n);
    let (xg, xc) = pair(&g, &c, &xd, t, n);
    // rms_norm over the whole row, and over 3 segments of 40 columns at offset 8 (the rest
    // copied through).
    for (name, seg) in [
        ("rms_norm whole", Segments::whole(n)),
        (
            "rms_norm segments",
            Segments {
                groups: 3,
                stride: 64,
                offset: 8,
                len: 40,
            },
        ),
    ] {
        let wd = rng.floats(seg.len);
        let (wg, wc) = pair(&g, &c, &wd, 1, seg.len);
        let mut og = g.tensor(t, n);
        let mut oc = c.tensor(t, n);
        g.rms_norm(&xg, &wg, seg, 1e-6, &mut og).unwrap();
        c.rms_norm(&xc, &wc, seg, 1e-6, &mut oc).unwrap();
        assert_close(name, &g, &og, &c, &oc, FLOAT_BOUND);
    }
    // swiglu, add, scale.
    let yd = rng.floats(t * n);
    let (yg, yc) = pair(&g, &c, &yd, t, n);
    let mut og = g.tensor(t, n);
    let mut oc = c.tensor(t, n);
    g.swiglu(&xg, &yg, &mut og).unwrap();
    c.swiglu(&xc, &yc, &mut oc).unwrap();
    assert_close("swiglu", &g, &og, &c, &oc, FLOAT_BOUND);
    g.add_assign(&mut og, &xg).unwrap();
    c.add_assign(&mut oc, &xc).unwrap();
    assert_close("add_assign", &g, &og, &c, &oc, FLOAT_BOUND);
    g.scale(&mut og, -0.37).unwrap();
    c.scale(&mut oc, -0.37).unwrap();
    assert_close("scale", &g, &og, &c, &oc, FLOAT_BOUND);
    // hadamard over 64-value chunks: the same operations in the same order, so the same bits.
    let (mut hg, mut hc) = pair(&g, &c, &yd, t, n);
    g.hadamard(&mut hg, 64).unwrap();
    c.hadamard(&mut hc, 64).unwrap();
    assert_eq!(host(&g, &hg), host(&c, &hc), "hadamard");
    assert!(
        g.hadamard(&mut hg, 48).is_err(),
        "hadamard needs a power of two"
    );
    // copy_rows.
    let mut rg = g.tensor(2, n);
    let mut rc = c.tensor(2, n);
    g.copy_rows(&xg, 3, &mut rg).unwrap();
    c.copy_rows(&xc, 3, &mut rc).unwrap();
    assert_eq!(host(&g, &rg), host(&c, &rc));
    // copy_segments, including a stride-0 source (one segment broadcast to every group).
    for (name, ss, ds) in [
        (
            "copy_segments",
            Segments {
                groups: 4,
                stride: 48,
                offset: 16,
                len: 24,
            },
            Segments {
                groups: 4,
                stride: 30,
                offset: 2,
                len: 24,
            },
        ),
        (
            "copy_segments broadcast",
            Segments {
                groups: 4,
                stride: 0,
                offset: 160,
                len: 24,
            },
            Segments {
                groups: 4,
                stride: 30,
                offset: 2,
                len: 24,
            },
        ),
    ] {
        let mut dg = g.tensor(t, 124);
        let mut dc = c.tensor(t, 124);
        g.copy_segments(&xg, ss, &mut dg, ds).unwrap();
        c.copy_segments(&xc, ss, &mut dc, ds).unwrap();
        assert_eq!(host(&g, &dg), host(&c, &dc), "{name}");
    }
}

#[test]
fn rope_matches_cpu_in_both_modes_with_yarn() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let mut rng = Rng::new(22);
    let (t, n) = (4, 3 * 96);
    let xd = rng.floats(t * n);
    let positions = [0u32, 7, 4095, 163_000];
    for mode in [RopeMode::Norm, RopeMode::Neox] {
        for ext_factor in [0.0, 1.0] {
            let p = RopeParams {
                mode,
                n_rot: 64,
                freq_base: 10000.0,
                freq_scale: 0.025,
                ext_factor,
                attn_factor: 1.0,
                corr_dims: [10.4, 23.9],
            };
            // The rotary part of 3 heads: columns 32..96 of each 96.
            let seg = Segments {
                groups: 3,
                stride: 96,
                offset: 32,
                len: 64,
            };
            let (mut xg, mut xc) = pair(&g, &c, &xd, t, n);
            g.rope(&mut xg, seg, &positions, &p).unwrap();
            c.rope(&mut xc, seg, &positions, &p).unwrap();
            assert_close(
                &format!("rope {mode:?} ext {ext_factor}"),
                &g,
                &xg,
                &c,
                &xc,
                FLOAT_BOUND,
            );
        }
    }
}

#[test]
fn routed_experts_and_combine_match_cpu() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let mut rng = Rng::new(23);
    let (n_embd, ff, n_expert, k) = (256, 96, 4, 2);
    for ty in [GgmlType::Q4_K, GgmlType::IQ4_NL] {
        // Stacked expert tensors; experts are row views, as the model loads them.
        let gate_b = random_weight_bytes(ty, ff * n_expert, n_embd, &mut rng);
        let up_b = random_weight_bytes(ty, ff * n_expert, n_embd, &mut rng);
        let down_b = random_weight_bytes(GgmlType::Q8_0, n_embd * n_expert, ff, &mut rng);
        for t in [1usize, 5] {
            // Small inputs: random blocks have scales up to 1000, and the CPU's 8-bit
            // activation blocks keep their scale in f16 (max 65504).
            let xd: Vec<f32> = rng.floats(t * n_embd).iter().map(|v| v * 1e-3).collect();
            // Token i routes to experts (i, i+1) mod n_expert.
            let mut x_rows: Vec<Vec<u32>> = vec![Vec::new(); n_expert];
            let mut out_rows: Vec<Vec<u32>> = vec![Vec::new(); n_expert];
            for tok in 0..t {
                for j in 0..k {
                    let e = (tok + j) % n_expert;
                    x_rows[e].push(tok as u32);
                    out_rows[e].push((tok * k + j) as u32);
                }
            }
            let weights: Vec<f32> = (0..t * k).map(|_| rng.f32()).collect();
            let results: Vec<Vec<f32>> = vec![
                run_experts(
                    &g,
                    ty,
                    &gate_b,
                    &up_b,
                    &down_b,
                    (n_embd, ff, n_expert),
                    &xd,
                    t,
                    k,
                    &x_rows,
                    &out_rows,
                    &weights,
                ),
                run_experts(
                    &c,
                    ty,
                    &gate_b,
                    &up_b,
                    &down_b,
                    (n_embd, ff, n_expert),
                    &xd,
                    t,
                    k,
                    &x_rows,
                    &out_rows,
                    &weights,
                ),
            ];
            for (name, r) in ["gpu", "cpu"].iter().zip(&results) {
                let bad = r.iter().filter(|v| !v.is_finite()).count();
                assert_eq!(
                    bad, 0,
                    "moe {ty} T={t}: {bad} non-finite values on the {name}"
                );
            }
            let e = nmse(&results[0], &results[1]);
            eprintln!("{:>28}: NMSE {e:.1e}", format!("moe {ty} T={t}"));
            assert!(e <= 5e-4, "moe {ty} T={t}: NMSE {e:e}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_experts<B: Backend>(
    be: &B,
    ty: GgmlType,
    gate_b: &[u8],
    up_b: &[u8],
    down_b: &[u8],
    (n_embd, ff, n_expert): (usize, usize, usize),
    xd: &[f32],
    t: usize,
    k: usize,
    x_rows: &[Vec<u32>],
    out_rows: &[Vec<u32>],
    weights: &[f32],
) -> Vec<f32> {
    let gate = be
        .load_weight(weight_data(
            "gate_exps",
            ty,
            ff * n_expert,
            n_embd,
            1,
            gate_b.to_vec(),
        ))
        .unwrap();
    let up = be
        .load_weight(weight_data(
            "up_exps",
            ty,
            ff * n_expert,
            n_embd,
            1,
            up_b.to_vec(),
        ))
        .unwrap();
    let down = be
        .load_weight(weight_data(
            "down_exps",
            GgmlType::Q8_0,
            n_embd * n_expert,
            ff,
            1,
            down_b.to_vec(),
        ))
        .unwrap();
    let experts: Vec<(B::Weight, B::Weight, B::Weight)> = (0..n_expert)
        .map(|e| {
            (
                be.weight_rows(&gate, e * ff, ff).unwrap(),
                be.weight_rows(&up, e * ff, ff).unwrap(),
                be.weight_rows(&down, e * n_embd, n_embd).unwrap(),
            )
        })
        .collect();
    let jobs: Vec<ExpertJob<'_, B::Weight>> = (0..n_expert)
        .filter(|&e| !x_rows[e].is_empty())
        .map(|e| ExpertJob {
            gate: &experts[e].0,
            up: &experts[e].1,
            down: &experts[e].2,
            x_rows: &x_rows[e],
            out_rows: &out_rows[e],
        })
        .collect();
    let x = be.upload(xd, t, n_embd).unwrap();
    let mut slots = be.tensor(t * k, n_embd);
    be.moe_experts(&jobs, &x, &mut slots).unwrap();
    let mut out = be.tensor(t, n_embd);
    be.moe_combine(&slots, weights, k, &mut out).unwrap();
    let mut all = host(be, &slots);
    all.extend(host(be, &out));
    all
}

/// Prefill of 5 tokens then 2 decode steps through a cache; every step's attention output is
/// compared.
fn attention_case(
    g: &WgpuBackend,
    spec: CacheSpec,
    p: AttnParams,
    gpu_types: (GgmlType, GgmlType),
    bound: f64,
    name: &str,
) {
    let c = cpu();
    let mut rng = Rng::new(24);
    let mut gspec = spec.clone();
    gspec.k_type = gpu_types.0;
    gspec.v_type = gpu_types.1;
    let mut gc = g.new_cache(&gspec).unwrap();
    let mut cc = c.new_cache(&spec).unwrap();
    let mut start = 0;
    for t in [5usize, 1, 1] {
        let qd = rng.floats(t * p.n_head * p.head_dim_k);
        let kd = rng.floats(t * spec.k_cols);
        let (kg, kc) = pair(g, &c, &kd, t, spec.k_cols);
        let vd = spec.v_cols.map(|vc| rng.floats(t * vc));
        let v = vd
            .as_ref()
            .map(|vd| pair(g, &c, vd, t, spec.v_cols.unwrap_or(0)));
        g.cache_store(&mut gc, 1, start, &kg, v.as_ref().map(|v| &v.0))
            .unwrap();
        c.cache_store(&mut cc, 1, start, &kc, v.as_ref().map(|v| &v.1))
            .unwrap();
        let (qg, qc) = pair(g, &c, &qd, t, p.n_head * p.head_dim_k);
        let mut og = g.tensor(t, p.n_head * p.head_dim_v);
        let mut oc = c.tensor(t, p.n_head * p.head_dim_v);
        g.attention(&gc, 1, &qg, start, &p, &mut og).unwrap();
        c.attention(&cc, 1, &qc, start, &p, &mut oc).unwrap();
        assert_close(&format!("{name} start {start}"), g, &og, &c, &oc, bound);
        start += t;
    }
}

#[test]
fn attention_over_every_cache_type_matches_cpu() {
    let Some(g) = gpu() else { return };
    // Grouped-query attention: 4 heads over 2 KV heads of 64.
    let gqa = AttnParams {
        n_head: 4,
        n_head_kv: 2,
        head_dim_k: 64,
        head_dim_v: 64,
        scale: 0.125,
    };
    // MLA's latent cache: one KV row of 64 latent + 32 rotary values; V is the latent part.
    let mla = AttnParams {
        n_head: 4,
        n_head_kv: 1,
        head_dim_k: 96,
        head_dim_v: 64,
        scale: 0.11,
    };
    let spec = |k_cols, v_cols, k, v| CacheSpec {
        n_layer: 2,
        n_ctx: 16,
        k_cols,
        v_cols,
        k_type: k,
        v_type: v,
    };
    use GgmlType as T;
    for ty in [
        T::F32,
        T::F16,
        T::BF16,
        T::Q8_0,
        T::Q4_0,
        T::Q4_1,
        T::Q5_0,
        T::Q5_1,
        T::IQ4_NL,
    ] {
        // Both backends store the same rows with the same quantizer, so only summation order
        // differs; a code that rounds the other way at a boundary shows as a larger error.
        let bound = if matches!(ty, T::F32 | T::F16 | T::BF16) {
            FLOAT_BOUND
        } else {
            1e-4
        };
        attention_case(
            &g,
            spec(128, Some(128), ty, ty),
            gqa,
            (ty, ty),
            bound,
            &format!("attention gqa {ty}"),
        );
        attention_case(
            &g,
            spec(96, None, ty, ty),
            mla,
            (ty, ty),
            bound,
            &format!("attention mla {ty}"),
        );
    }
    // Different K and V types.
    attention_case(
        &g,
        spec(128, Some(128), T::Q8_0, T::F16),
        gqa,
        (T::Q8_0, T::F16),
        1e-4,
        "attention gqa Q8_0/F16",
    );
}

#[test]
fn reductions_without_subgroups_match_cpu() {
    let opts = GpuOptions {
        subgroups: false,
        ..Default::default()
    };
    let Some(g) = backend_or_fail(opts) else {
        return;
    };
    let mla = AttnParams {
        n_head: 4,
        n_head_kv: 1,
        head_dim_k: 80,
        head_dim_v: 64,
        scale: 0.11,
    };
    let spec = CacheSpec {
        n_layer: 2,
        n_ctx: 16,
        k_cols: 80,
        v_cols: None,
        k_type: GgmlType::F16,
        v_type: GgmlType::F16,
    };
    attention_case(
        &g,
        spec,
        mla,
        (GgmlType::F16, GgmlType::F16),
        FLOAT_BOUND,
        "attention mla (no subgroups)",
    );
    let c = cpu();
    let mut rng = Rng::new(25);
    let xd = rng.floats(3 * 300);
    let wd = rng.floats(300);
    let (xg, xc) = pair(&g, &c, &xd, 3, 300);
    let (wg, wc) = pair(&g, &c, &wd, 1, 300);
    let mut og = g.tensor(3, 300);
    let mut oc = c.tensor(3, 300);
    g.rms_norm(&xg, &wg, Segments::whole(300), 1e-5, &mut og)
        .unwrap();
    c.rms_norm(&xc, &wc, Segments::whole(300), 1e-5, &mut oc)
        .unwrap();
    assert_close("rms_norm (no subgroups)", &g, &og, &c, &oc, FLOAT_BOUND);
}
