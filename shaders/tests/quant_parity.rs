//! Weight ops on the GPU against the CPU backend, for every type the GPU reads: dequantization
//! (embed), matrix-vector (decode) and tiled matrix products (prompt), per-head products, and
//! weights split across many small bindings.

mod common;

use common::*;
use sluice_core::backend::{Backend, Segments};
use sluice_core::cpu::kernels::{dot_kernel, quantize_activation};
use sluice_core::cpu::CpuBackend;
use sluice_core::quant::GgmlType;
use sluice_shaders::formats::FORMATS;
use sluice_shaders::testing::backend_or_fail;
use sluice_shaders::GpuOptions;

/// NMSE allowed between the GPU's and the CPU backend's products. Both dequantize exactly and
/// multiply the same activations (the GPU rounds them to the weight type's activation format
/// as the CPU converts them, including Q8_1's f16 block sums), so only the order of f32 sums
/// differs.
fn product_bound(_ty: GgmlType) -> f64 {
    1e-10
}

#[test]
fn dequantization_matches_cpu_for_every_type() {
    let Some(gpu) = backend_or_fail(GpuOptions::default()) else {
        return;
    };
    let cpu = CpuBackend::new(1).unwrap();
    let (rows, cols) = (6, 512);
    let ids = [3u32, 0, 5, 3];
    let mut rng = Rng::new(1);
    let mut report = Vec::new();
    for f in FORMATS {
        let bytes = random_weight_bytes(f.ty, rows, cols, &mut rng);
        let wc = cpu
            .load_weight(weight_data("t", f.ty, rows, cols, 1, bytes.clone()))
            .unwrap();
        let wg = gpu
            .load_weight(weight_data("t", f.ty, rows, cols, 1, bytes))
            .unwrap();
        let mut oc = cpu.tensor(ids.len(), cols);
        let mut og = gpu.tensor(ids.len(), cols);
        cpu.embed(&wc, &ids, &mut oc).unwrap();
        gpu.embed(&wg, &ids, &mut og).unwrap();
        let (a, b) = (host(&gpu, &og), host(&cpu, &oc));
        let max_abs = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
        report.push(format!(
            "{:>8} max|Δ| {max_abs:.2e} of {scale:.2e}",
            f.ty.to_string()
        ));
        assert!(
            max_abs <= scale * 1e-6,
            "{}: dequantized rows differ by {max_abs}",
            f.ty
        );
    }
    eprintln!("dequant (embed) GPU vs CPU:\n{}", report.join("\n"));
}

/// `out = W · x` for `t` tokens on the GPU, compared with the CPU backend and with an exact
/// product (in f64) of the dequantized weights and the activations rounded by core's
/// activation quantizer, which checks the GPU independently of the CPU's dot kernels:
/// `(vs CPU backend, vs exact)`.
fn product_nmse<B: Backend>(
    gpu: &B,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    t: usize,
    seed: u64,
) -> (f64, f64) {
    let cpu = CpuBackend::new(1).unwrap();
    let mut rng = Rng::new(seed);
    let bytes = random_weight_bytes(ty, rows, cols, &mut rng);
    let x = rng.floats(t * cols);
    let mut dense = vec![0f32; rows * cols];
    ty.dequantize(&bytes, &mut dense).unwrap();
    let xr = rounded_activations(ty, &x, cols);
    let exact: Vec<f32> = (0..t * rows)
        .map(|i| {
            let (tok, r) = (i / rows, i % rows);
            let w = &dense[r * cols..(r + 1) * cols];
            let xt = &xr[tok * cols..(tok + 1) * cols];
            w.iter()
                .zip(xt)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let wc = cpu
        .load_weight(weight_data("w", ty, rows, cols, 1, bytes.clone()))
        .unwrap();
    let wg = gpu
        .load_weight(weight_data("w", ty, rows, cols, 1, bytes))
        .unwrap();
    let mut oc = cpu.tensor(t, rows);
    let mut og = gpu.tensor(t, rows);
    cpu.matmul(&wc, &cpu.upload(&x, t, cols).unwrap(), &mut oc)
        .unwrap();
    gpu.matmul(&wg, &gpu.upload(&x, t, cols).unwrap(), &mut og)
        .unwrap();
    let got = host(gpu, &og);
    (nmse(&got, &host(&cpu, &oc)), nmse(&got, &exact))
}

/// Rows of `x` as the CPU backend's dot kernel for `ty` sees them: converted to its
/// activation format and back.
fn rounded_activations(ty: GgmlType, x: &[f32], cols: usize) -> Vec<f32> {
    let Some(k) = dot_kernel(ty) else {
        return x.to_vec();
    };
    let rb = k.act.row_bytes(cols as u64).unwrap() as usize;
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let mut bytes = vec![0u8; rb];
        quantize_activation(k.act, row, &mut bytes).unwrap();
        k.act.dequantize(&bytes, o).unwrap();
    }
    out
}

/// The GPU's products against the exact ones: f32 sums in another order, nothing more — but
/// for Q4_1/Q5_1, whose min term (like the CPU's) uses Q8_1's block sum rounded to f16 rather
/// than the sum of the rounded activations.
fn exact_bound(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 => 1e-6,
        _ => 1e-10,
    }
}

#[test]
fn products_match_cpu_for_every_type() {
    let Some(gpu) = backend_or_fail(GpuOptions::default()) else {
        return;
    };
    let mut report = Vec::new();
    for f in FORMATS {
        // 1 token: matvec; 3: matvec over several rows; 70: two tiles of the matmul kernel.
        let mut line = format!("{:>8}", f.ty.to_string());
        for (i, t) in [1usize, 3, 70].into_iter().enumerate() {
            let (e, x) = product_nmse(&gpu, f.ty, 72, 512, t, 10 + i as u64);
            line.push_str(&format!("  T={t}: {e:.1e} (exact {x:.0e})"));
            assert!(e <= product_bound(f.ty), "{} T={t}: NMSE {e:e}", f.ty);
            assert!(
                x <= exact_bound(f.ty),
                "{} T={t}: NMSE {x:e} against the exact product",
                f.ty
            );
        }
        report.push(line);
    }
    eprintln!(
        "matmul NMSE GPU vs CPU backend (vs exact f64):\n{}",
        report.join("\n")
    );
}

#[test]
fn products_without_subgroups_match_cpu() {
    let opts = GpuOptions {
        subgroups: false,
        ..Default::default()
    };
    let Some(gpu) = backend_or_fail(opts) else {
        return;
    };
    for ty in [GgmlType::Q4_K, GgmlType::F16, GgmlType::IQ2_XS] {
        let (e, x) = product_nmse(&gpu, ty, 40, 768, 1, 3);
        assert!(
            e <= product_bound(ty) && x <= exact_bound(ty),
            "{ty}: NMSE {e:e}, {x:e}"
        );
    }
}

#[test]
fn weights_split_across_small_bindings() {
    // 4 KiB parts: a 300 × 256 Q8_0 matrix (288 bytes a row) spans 22 buffers, more than a
    // kernel binds at once, so products run in row runs and lookups per window.
    let opts = GpuOptions {
        max_binding_bytes: Some(4096),
        ..Default::default()
    };
    let Some(gpu) = backend_or_fail(opts) else {
        return;
    };
    for ty in [GgmlType::Q8_0, GgmlType::IQ3_S, GgmlType::F32] {
        for t in [1, 9] {
            let (e, x) = product_nmse(&gpu, ty, 300, 256, t, 5);
            assert!(
                e <= product_bound(ty) && x <= exact_bound(ty),
                "{ty} T={t}: NMSE {e:e}, {x:e}"
            );
        }
    }
    let cpu = CpuBackend::new(1).unwrap();
    let mut rng = Rng::new(8);
    let (rows, cols) = (300, 256);
    let bytes = random_weight_bytes(GgmlType::Q8_0, rows, cols, &mut rng);
    let wc = cpu
        .load_weight(weight_data(
            "e",
            GgmlType::Q8_0,
            rows,
            cols,
            1,
            bytes.clone(),
        ))
        .unwrap();
    let wg = gpu
        .load_weight(weight_data("e", GgmlType::Q8_0, rows, cols, 1, bytes))
        .unwrap();
    let ids = [299u32, 0, 150, 14, 299];
    let mut oc = cpu.tensor(ids.len(), cols);
    let mut og = gpu.tensor(ids.len(), cols);
    cpu.embed(&wc, &ids, &mut oc).unwrap();
    gpu.embed(&wg, &ids, &mut og).unwrap();
    assert_eq!(host(&gpu, &og), host(&cpu, &oc));
}

#[test]
fn per_head_products_match_cpu() {
    let Some(gpu) = backend_or_fail(GpuOptions::default()) else {
        return;
    };
    let cpu = CpuBackend::new(1).unwrap();
    let mut rng = Rng::new(4);
    // MLA's absorbed query: 4 heads, each maps its 32 "nope" columns (stride 48 in q) to 64
    // latent columns (stride 80 in the output).
    let (heads, rows, cols) = (4, 64, 32);
    let xs = Segments {
        groups: heads,
        stride: 48,
        offset: 0,
        len: cols,
    };
    let os = Segments {
        groups: heads,
        stride: 80,
        offset: 0,
        len: rows,
    };
    for ty in [GgmlType::F16, GgmlType::Q8_0] {
        for t in [1, 6] {
            let bytes = random_weight_bytes(ty, rows * heads, cols, &mut rng);
            let x = rng.floats(t * heads * 48);
            let wc = cpu
                .load_weight(weight_data("k_b", ty, rows, cols, heads, bytes.clone()))
                .unwrap();
            let wg = gpu
                .load_weight(weight_data("k_b", ty, rows, cols, heads, bytes))
                .unwrap();
            let mut oc = cpu.tensor(t, heads * 80);
            let mut og = gpu.tensor(t, heads * 80);
            cpu.matmul_groups(
                &wc,
                &cpu.upload(&x, t, heads * 48).unwrap(),
                xs,
                &mut oc,
                os,
            )
            .unwrap();
            gpu.matmul_groups(
                &wg,
                &gpu.upload(&x, t, heads * 48).unwrap(),
                xs,
                &mut og,
                os,
            )
            .unwrap();
            let e = nmse(&host(&gpu, &og), &host(&cpu, &oc));
            assert!(e <= product_bound(ty), "{ty} T={t}: NMSE {e:e}");
        }
    }
}

/// Activations for F16 weights are rounded to f16 to nearest, ties to even, as ggml converts
/// them, whatever the driver's own f32→f16 conversion does (WGSL leaves it open; NVIDIA's does
/// not round to nearest). An identity F16 matrix returns each activation as the GPU rounded it.
#[test]
fn f16_activations_round_to_nearest_even() {
    let Some(gpu) = backend_or_fail(GpuOptions::default()) else {
        return;
    };
    let n = 32;
    let mut identity = Vec::with_capacity(n * n * 2);
    for r in 0..n {
        for c in 0..n {
            let v = half::f16::from_f32(if r == c { 1.0 } else { 0.0 });
            identity.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    let w = gpu
        .load_weight(weight_data("identity", GgmlType::F16, n, n, 1, identity))
        .unwrap();
    let ulp = f32::powi(2.0, -11); // half an f16 ulp at 1.0 is 2^-11
    let mut values = vec![
        1.0 + ulp,                 // tie: stays 1.0 (even)
        1.0 + 3.0 * ulp,           // tie: up to 1 + 2^-9 (even)
        1.0 + ulp * 1.0001,        // just above the tie: up
        -(1.0 + ulp),              // negative tie
        65504.0,                   // largest f16
        65519.0,                   // rounds down to 65504
        6.103_515_6e-5,            // smallest normal (2^-14)
        f32::powi(2.0, -24),       // smallest subnormal
        f32::powi(2.0, -25),       // tie with zero: 0
        1.5 * f32::powi(2.0, -24), // subnormal tie: up to 2^-23 (even)
        2.5 * f32::powi(2.0, -24), // subnormal tie: down to 2^-23 (even)
        3.1e-5,                    // subnormal range
        -7.0e-6,
        0.0,
        -0.0,
        1.0e-9, // flushes to zero
    ];
    let mut rng = Rng::new(77);
    while values.len() < n {
        values.push(rng.floats(1)[0] * 1000.0);
    }
    let x = gpu.upload(&values, 1, n).unwrap();
    let mut y = gpu.tensor(1, n);
    gpu.matmul(&w, &x, &mut y).unwrap();
    for (got, v) in host(&gpu, &y).into_iter().zip(&values) {
        let want = half::f16::from_f32(*v).to_f32();
        assert_eq!(
            got.to_bits() & 0x7fff_ffff,
            want.to_bits() & 0x7fff_ffff,
            "{v:e}: {got:e} vs {want:e}"
        );
    }
}
