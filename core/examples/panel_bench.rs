//! Micro-benchmark of prompt-processing matmul throughput for one weight type: the one-row
//! multi-token kernels (8 tokens per call, as `matmul` walks a batch) against the panel GEMM
//! (16 rows decoded once, then all tokens), on 64 rows × 64 tokens (or TOKENS) at a few row lengths.
//!
//! usage: cargo run --release -p sluice-core --example panel_bench [TYPE [TOKENS]]
//! (default Q4_K, 64 tokens)
//! Prints GMAC/s on one thread (best of 10) and the panel decode time per 16 rows. The panel
//! column is missing where the CPU or the type has no panel kernel.

use sluice_core::cpu::kernels::{active_isa, kernels_for, panel, quantize_activation_scalar};
use std::time::Instant;

const ROWS: usize = 64;

fn best_of<F: FnMut()>(mut f: F) -> f64 {
    (0..10)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "Q4_K".into());
    let tokens: usize = match std::env::args().nth(2).map(|t| t.parse()) {
        None => 64,
        Some(Ok(t)) if t > 0 => t,
        Some(_) => {
            eprintln!("TOKENS must be a positive integer");
            std::process::exit(2);
        }
    };
    let Some(k) = kernels_for(active_isa())
        .and_then(|t| t.iter().find(|k| k.weight.name() == name.to_uppercase()))
    else {
        eprintln!("no CPU kernel for weight type {name}");
        std::process::exit(2);
    };
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for cols in [2048usize, 7168, 18432] {
        let Some(wb) = k.weight.row_bytes(cols as u64).map(|b| b as usize) else {
            continue;
        };
        // Random blocks with a small, normal f16 at both ends of each block (the d / dmin
        // fields of most formats): random f16 bits would include NaNs and subnormals.
        let mut w: Vec<u8> = (0..wb * ROWS).map(|_| next() as u8).collect();
        let block = k.weight.info().expect("known").block_bytes as usize;
        let h = half::f16::from_f32(0.01).to_le_bytes();
        for b in w.chunks_exact_mut(block) {
            b[..2].copy_from_slice(&h);
            b[block - 2..].copy_from_slice(&h);
        }
        let x: Vec<f32> = (0..cols)
            .map(|i| (i * 37 % 101) as f32 / 50.0 - 1.0)
            .collect();
        let ab = k.act.row_bytes(cols as u64).expect("whole blocks") as usize;
        let mut a1 = vec![0u8; ab];
        quantize_activation_scalar(k.act, &x, &mut a1).expect("activation");
        let acts = a1.repeat(tokens);
        let macs = (cols * ROWS * tokens) as f64;

        let mut out = [0f32; 8];
        let multi = best_of(|| {
            for t0 in (0..tokens).step_by(8) {
                for r in 0..ROWS {
                    (k.multi)(
                        cols,
                        &w[r * wb..(r + 1) * wb],
                        &acts[t0 * ab..],
                        ab,
                        &mut out,
                    );
                }
            }
        });
        print!(
            "{} {cols:>6} columns: one-row kernels {:6.1} GMAC/s",
            k.weight,
            macs / multi / 1e9
        );
        if let Some(bytes) = panel::panel_bytes(k.weight, cols) {
            let mut p = vec![0u8; bytes];
            let mut o = vec![0f32; panel::ROWS * tokens];
            let gemm = best_of(|| {
                for r in (0..ROWS).step_by(panel::ROWS) {
                    panel::pack(k.weight, cols, &w[r * wb..], wb, &mut p);
                    panel::gemm(k.weight, cols, &p, &acts, ab, tokens, &mut o);
                }
            });
            let pack = best_of(|| {
                panel::pack(k.weight, cols, &w, wb, &mut p);
            });
            print!(
                ", panels {:6.1} GMAC/s (decode included; {:.1} µs per 16 rows)",
                macs / gemm / 1e9,
                pack * 1e6
            );
        }
        println!();
    }
}
