//! Micro-benchmark of the CPU dot kernels: every weight type, scalar vs each vectorised ISA
//! this machine runs, one row of `n` elements (single activation row and 4 rows at once).
//!
//! usage: cargo run --release -p sluice-core --example kernel_bench [n] [types,...]
//! Prints ns per row and the speed-up over scalar. Timings are the minimum over repeats, so
//! other load on the machine mostly shows as noise rather than bias.

use sluice_core::cpu::kernels::{kernels_for, quantize_activation_scalar, Isa};

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7168);
    let only: Option<Vec<String>> = args
        .get(2)
        .map(|a| a.split(',').map(|s| s.to_uppercase()).collect());
    let isas = Isa::all_available();
    let scalar = kernels_for(Isa::Scalar).expect("scalar table");
    println!("n = {n}; ns per weight row (min of repeats)");
    print!("{:<8}", "type");
    for isa in &isas {
        print!(
            " {:>10} {:>10}",
            isa.name(),
            format!("{}x4/row", isa.name())
        );
    }
    println!(" {:>9} {:>9}", "speedup", "x4 speedup");
    let mut seed = 0x1234_5678_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for k in scalar {
        let name = k.weight.name();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let elems = k.weight.block_elems().expect("known") as usize;
        if !n.is_multiple_of(elems) {
            continue;
        }
        // Random blocks with realistic scales (random f16 bits would include subnormals,
        // whose float handling is slow on some CPUs and rare in real weights).
        let w_bytes = k.weight.row_bytes(n as u64).expect("row") as usize;
        let rows = 64usize;
        let mut w: Vec<u8> = (0..w_bytes * rows).map(|_| next() as u8).collect();
        let block = k.weight.info().expect("known").block_bytes as usize;
        let scale = half::f16::from_f32(0.0123).to_le_bytes();
        for b in w.chunks_exact_mut(block) {
            for &at in scale_fields(&name) {
                b[at..at + 2].copy_from_slice(&scale);
            }
        }
        let x: Vec<f32> = (0..n)
            .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let a_bytes = k.act.row_bytes(n as u64).expect("row") as usize;
        let mut a1 = vec![0u8; a_bytes];
        quantize_activation_scalar(k.act, &x, &mut a1).expect("act");
        let a4: Vec<u8> = a1.repeat(4);
        print!("{name:<8}");
        let mut base = (0.0, 0.0);
        let mut last = (0.0, 0.0);
        for isa in &isas {
            let table = kernels_for(*isa).expect("available");
            let kk = table
                .iter()
                .find(|t| t.weight == k.weight)
                .expect("same types");
            let single = time(|| {
                let mut s = 0.0;
                for r in 0..rows {
                    s += (kk.vec_dot)(n, &w[r * w_bytes..(r + 1) * w_bytes], &a1);
                }
                s
            }) / rows as f64;
            let multi = time(|| {
                let mut out = [0f32; 4];
                let mut s = 0.0;
                for r in 0..rows {
                    (kk.multi)(
                        n,
                        &w[r * w_bytes..(r + 1) * w_bytes],
                        &a4,
                        a_bytes,
                        &mut out,
                    );
                    s += out[0];
                }
                s
            }) / rows as f64
                / 4.0;
            if *isa == Isa::Scalar {
                base = (single, multi);
            }
            last = (single, multi);
            print!(" {single:>10.0} {multi:>10.0}");
        }
        println!(" {:>8.1}x {:>8.1}x", base.0 / last.0, base.0 / last.1);
    }
}

/// Offsets of a block's f16 scale fields (d, dmin / m) by type name.
fn scale_fields(name: &str) -> &'static [usize] {
    match name {
        "F32" | "F16" | "BF16" | "MXFP4" | "NVFP4" | "IQ1_M" => &[],
        "Q4_1" | "Q5_1" | "Q4_K" | "Q5_K" => &[0, 2],
        "Q2_K" => &[80, 82],
        "Q3_K" => &[108],
        "Q6_K" => &[208],
        "TQ1_0" => &[52],
        "TQ2_0" => &[64],
        _ => &[0],
    }
}

/// Minimum nanoseconds of `f` over repeats (~0.2 s budget).
fn time(mut f: impl FnMut() -> f32) -> f64 {
    let mut best = f64::MAX;
    let budget = Instant::now();
    let mut sink = 0.0f32;
    while budget.elapsed().as_secs_f64() < 0.2 {
        let t = Instant::now();
        sink += f();
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    std::hint::black_box(sink);
    best
}
