//! A backend that runs every op on the CPU and on the GPU and compares them, for finding which
//! op of a real model's forward pass makes the backends drift apart.
//!
//! After each op the GPU's output is measured against the CPU's (normalised MSE, recorded per
//! op name) and then overwritten with the CPU's, so every op is compared on identical inputs
//! and the forward pass follows the CPU exactly.

use sluice_core::backend::{
    AttnParams, Backend, CacheSpec, ExpertJob, RopeParams, Segments, WeightData,
};
use sluice_core::cpu::{CpuBackend, CpuCache, CpuTensor, CpuWeight};
use sluice_core::source::{block_on, LocalBoxFuture};
use sluice_core::Result;
use sluice_shaders::{GpuCache, GpuTensor, GpuWeight, WgpuBackend};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// CPU and GPU side by side.
pub struct DiffBackend {
    pub cpu: CpuBackend,
    pub gpu: WgpuBackend,
    /// Largest NMSE seen per op.
    pub worst: RefCell<BTreeMap<String, f64>>,
    /// Reset the GPU side to the CPU's after each op (compare ops on equal inputs); without,
    /// both run freely and `trace` shows where they drift apart.
    pub settle: bool,
    /// (op, NMSE) of every op in order, when not settling.
    pub trace: RefCell<Vec<(String, f64)>>,
}

pub struct Pair<C, G> {
    pub cpu: C,
    pub gpu: G,
}

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let (mut e, mut n) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        e += (x as f64 - y as f64).powi(2);
        n += (y as f64).powi(2);
    }
    if n == 0.0 {
        e
    } else {
        e / n
    }
}

impl DiffBackend {
    pub fn new(cpu: CpuBackend, gpu: WgpuBackend) -> Self {
        Self {
            cpu,
            gpu,
            worst: RefCell::new(BTreeMap::new()),
            settle: true,
            trace: RefCell::new(Vec::new()),
        }
    }

    /// Compares `t`'s two sides under `op`, then makes the GPU side equal the CPU side.
    fn settle(&self, op: &str, t: &mut Pair<CpuTensor, GpuTensor>) -> Result<()> {
        let g = block_on(self.gpu.download(&t.gpu))?;
        let e = nmse(&g, &t.cpu.data);
        let mut w = self.worst.borrow_mut();
        let slot = w.entry(op.to_string()).or_insert(0.0);
        // NaN counts as the worst.
        if e.is_nan() || e > *slot {
            *slot = e;
        }
        drop(w);
        if self.settle {
            t.gpu = self.gpu.upload(&t.cpu.data, t.cpu.rows, t.cpu.cols)?;
        } else {
            self.trace.borrow_mut().push((op.to_string(), e));
        }
        Ok(())
    }

    pub fn report(&self) -> String {
        self.worst
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k:>16}: {v:.2e}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

type T = Pair<CpuTensor, GpuTensor>;
type W = Pair<CpuWeight, GpuWeight>;

impl Backend for DiffBackend {
    type Tensor = T;
    type Weight = W;
    type Cache = Pair<CpuCache, GpuCache>;

    fn describe(&self) -> String {
        format!("{} vs {}", self.cpu.describe(), self.gpu.describe())
    }

    fn load_weight(&self, w: WeightData) -> Result<W> {
        Ok(Pair {
            cpu: self.cpu.load_weight(w.clone())?,
            gpu: self.gpu.load_weight(w)?,
        })
    }

    fn weight_rows(&self, w: &W, first_row: usize, rows: usize) -> Result<W> {
        Ok(Pair {
            cpu: self.cpu.weight_rows(&w.cpu, first_row, rows)?,
            gpu: self.gpu.weight_rows(&w.gpu, first_row, rows)?,
        })
    }

    fn tensor(&self, rows: usize, cols: usize) -> T {
        Pair {
            cpu: self.cpu.tensor(rows, cols),
            gpu: self.gpu.tensor(rows, cols),
        }
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<T> {
        Ok(Pair {
            cpu: self.cpu.upload(data, rows, cols)?,
            gpu: self.gpu.upload(data, rows, cols)?,
        })
    }

    fn download<'a>(&'a self, t: &'a T) -> LocalBoxFuture<'a, Result<Vec<f32>>> {
        self.cpu.download(&t.cpu)
    }

    fn shape(&self, t: &T) -> (usize, usize) {
        self.cpu.shape(&t.cpu)
    }

    fn new_cache(&self, spec: &CacheSpec) -> Result<Self::Cache> {
        Ok(Pair {
            cpu: self.cpu.new_cache(spec)?,
            gpu: self.gpu.new_cache(spec)?,
        })
    }

    fn embed(&self, table: &W, ids: &[u32], out: &mut T) -> Result<()> {
        self.cpu.embed(&table.cpu, ids, &mut out.cpu)?;
        self.gpu.embed(&table.gpu, ids, &mut out.gpu)?;
        self.settle("embed", out)
    }

    fn rms_norm(&self, x: &T, w: &T, seg: Segments, eps: f32, out: &mut T) -> Result<()> {
        self.cpu.rms_norm(&x.cpu, &w.cpu, seg, eps, &mut out.cpu)?;
        self.gpu.rms_norm(&x.gpu, &w.gpu, seg, eps, &mut out.gpu)?;
        self.settle("rms_norm", out)
    }

    fn matmul(&self, w: &W, x: &T, out: &mut T) -> Result<()> {
        self.cpu.matmul(&w.cpu, &x.cpu, &mut out.cpu)?;
        self.gpu.matmul(&w.gpu, &x.gpu, &mut out.gpu)?;
        self.settle(&format!("matmul {}", w.cpu.ty), out)
    }

    fn matmul_groups(&self, w: &W, x: &T, xs: Segments, out: &mut T, os: Segments) -> Result<()> {
        self.cpu
            .matmul_groups(&w.cpu, &x.cpu, xs, &mut out.cpu, os)?;
        self.gpu
            .matmul_groups(&w.gpu, &x.gpu, xs, &mut out.gpu, os)?;
        self.settle(&format!("groups {}", w.cpu.ty), out)
    }

    fn rope(&self, x: &mut T, seg: Segments, positions: &[u32], p: &RopeParams) -> Result<()> {
        self.cpu.rope(&mut x.cpu, seg, positions, p)?;
        self.gpu.rope(&mut x.gpu, seg, positions, p)?;
        self.settle("rope", x)
    }

    fn copy_segments(&self, src: &T, ss: Segments, dst: &mut T, ds: Segments) -> Result<()> {
        self.cpu.copy_segments(&src.cpu, ss, &mut dst.cpu, ds)?;
        self.gpu.copy_segments(&src.gpu, ss, &mut dst.gpu, ds)?;
        self.settle("copy_segments", dst)
    }

    fn copy_rows(&self, src: &T, first: usize, dst: &mut T) -> Result<()> {
        self.cpu.copy_rows(&src.cpu, first, &mut dst.cpu)?;
        self.gpu.copy_rows(&src.gpu, first, &mut dst.gpu)?;
        self.settle("copy_rows", dst)
    }

    fn cache_store(
        &self,
        cache: &mut Self::Cache,
        layer: usize,
        start: usize,
        k: &T,
        v: Option<&T>,
    ) -> Result<()> {
        self.cpu
            .cache_store(&mut cache.cpu, layer, start, &k.cpu, v.map(|v| &v.cpu))?;
        self.gpu
            .cache_store(&mut cache.gpu, layer, start, &k.gpu, v.map(|v| &v.gpu))
    }

    fn attention(
        &self,
        cache: &Self::Cache,
        layer: usize,
        q: &T,
        start: usize,
        p: &AttnParams,
        out: &mut T,
    ) -> Result<()> {
        self.cpu
            .attention(&cache.cpu, layer, &q.cpu, start, p, &mut out.cpu)?;
        self.gpu
            .attention(&cache.gpu, layer, &q.gpu, start, p, &mut out.gpu)?;
        self.settle("attention", out)
    }

    fn swiglu(&self, gate: &T, up: &T, out: &mut T) -> Result<()> {
        self.cpu.swiglu(&gate.cpu, &up.cpu, &mut out.cpu)?;
        self.gpu.swiglu(&gate.gpu, &up.gpu, &mut out.gpu)?;
        self.settle("swiglu", out)
    }

    fn hadamard(&self, x: &mut T, n: usize) -> Result<()> {
        self.cpu.hadamard(&mut x.cpu, n)?;
        self.gpu.hadamard(&mut x.gpu, n)?;
        self.settle("hadamard", x)
    }

    fn add_assign(&self, acc: &mut T, x: &T) -> Result<()> {
        self.cpu.add_assign(&mut acc.cpu, &x.cpu)?;
        self.gpu.add_assign(&mut acc.gpu, &x.gpu)?;
        self.settle("add_assign", acc)
    }

    fn scale(&self, acc: &mut T, s: f32) -> Result<()> {
        self.cpu.scale(&mut acc.cpu, s)?;
        self.gpu.scale(&mut acc.gpu, s)?;
        self.settle("scale", acc)
    }

    fn moe_experts(&self, jobs: &[ExpertJob<'_, W>], x: &T, out: &mut T) -> Result<()> {
        let cj: Vec<ExpertJob<'_, CpuWeight>> = jobs
            .iter()
            .map(|j| ExpertJob {
                gate: &j.gate.cpu,
                up: &j.up.cpu,
                down: &j.down.cpu,
                x_rows: j.x_rows,
                out_rows: j.out_rows,
            })
            .collect();
        let gj: Vec<ExpertJob<'_, GpuWeight>> = jobs
            .iter()
            .map(|j| ExpertJob {
                gate: &j.gate.gpu,
                up: &j.up.gpu,
                down: &j.down.gpu,
                x_rows: j.x_rows,
                out_rows: j.out_rows,
            })
            .collect();
        self.cpu.moe_experts(&cj, &x.cpu, &mut out.cpu)?;
        self.gpu.moe_experts(&gj, &x.gpu, &mut out.gpu)?;
        self.settle("moe_experts", out)
    }

    fn moe_combine(&self, slots: &T, weights: &[f32], k: usize, out: &mut T) -> Result<()> {
        self.cpu.moe_combine(&slots.cpu, weights, k, &mut out.cpu)?;
        self.gpu.moe_combine(&slots.gpu, weights, k, &mut out.gpu)?;
        self.settle("moe_combine", out)
    }
}
