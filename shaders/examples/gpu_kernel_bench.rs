//! Times weight products on the GPU: `gpu_kernel_bench [TYPE] [ROWS] [COLS] [TOKENS] [REPS]`
//! (default Q4_K 4096 4096 1 20). Prints milliseconds per product and weight bytes per second.
use sluice_core::backend::{Backend, WeightBytes, WeightData};
use sluice_core::quant::GgmlType;
use sluice_core::source::block_on;
use sluice_shaders::{GpuOptions, WgpuBackend};
use std::sync::Arc;
use std::time::Instant;

fn main() -> sluice_core::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let ty = GgmlType::from_name(&arg(1, "Q4_K"))
        .ok_or_else(|| sluice_core::Error::Invalid(format!("unknown type {}", arg(1, ""))))?;
    let num = |i: usize, d: &str| arg(i, d).parse::<usize>().unwrap_or(1);
    let (rows, cols, t, reps) = (num(2, "4096"), num(3, "4096"), num(4, "1"), num(5, "20"));
    let be = block_on(WgpuBackend::new(GpuOptions::default()))?;
    let bytes = ty.row_bytes(cols as u64).unwrap_or(0) as usize * rows;
    // Zero bytes are a valid block in every format (all-zero scales).
    let w = be.load_weight(WeightData {
        name: "w".into(),
        ty,
        cols,
        rows,
        mats: 1,
        bytes: WeightBytes::Owned(Arc::new(vec![0u8; bytes])),
    })?;
    let x = be.upload(&vec![0.5f32; t * cols], t, cols)?;
    let mut y = be.tensor(t, rows);
    be.matmul(&w, &x, &mut y)?;
    block_on(be.download(&y))?;
    let t0 = Instant::now();
    for _ in 0..reps {
        be.matmul(&w, &x, &mut y)?;
    }
    block_on(be.download(&y))?;
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "{} {ty} {rows}x{cols} T={t}: {ms:.3} ms, {:.1} GB/s of weights",
        be.describe(),
        bytes as f64 / ms / 1e6
    );
    Ok(())
}
