//! [`HybridBackend`]: one forward pass across the CPU backend and the wgpu backend.
//!
//! Partial offload (`-ngl N` below the layer count, `--cpu-moe`, `-ot REGEX=CPU`) puts some
//! weights on each device. The model stays backend-agnostic: it runs on this backend, which
//! owns a [`CpuBackend`] and a [`WgpuBackend`] and sends each op to one of them:
//!
//! - an op with a weight (matmul, embed, routed experts) runs where the weight lives, and the
//!   weight's device comes from its tensor name through [`Placement`];
//! - an op without one (norms, rope, attention, adds) runs on the device of the layer being
//!   computed ([`Backend::enter_layer`]); the KV cache of a layer lives there too;
//! - an activation tensor keeps a copy per device and knows which copies are current, so it
//!   crosses between devices only when an op on the other side reads it: once per change of
//!   device along the pass (hidden state into the first GPU layer, MoE input and output around
//!   CPU experts), never per op.
//!
//! Copies to the host wait for the GPU (native only: this backend is not built for the
//! browser, which has no CPU threads to offload to).

use crate::backend::{GpuCache, GpuTensor, WgpuBackend};
use crate::weights::GpuWeight;
use sluice_core::backend::{
    AttnParams, Backend, CacheSpec, ExpertJob, RopeParams, Segments, WeightData,
};
use sluice_core::cpu::{CpuBackend, CpuCache, CpuTensor, CpuWeight};
use sluice_core::source::{block_on, LocalBoxFuture};
use sluice_core::{Error, Result};
use std::cell::{Cell, Ref, RefCell};

/// Where a weight or a layer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Gpu,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Device::Cpu => "CPU",
            Device::Gpu => "GPU",
        })
    }
}

/// What goes where: the device of each repeating layer (its activations, norms and KV
/// cache), of the work after the last layer (output norm, lm head), and of each weight.
pub struct Placement {
    /// Device of repeating layer `i` (layers past the end: the CPU).
    pub layers: Vec<Device>,
    /// Device of the output norm and the lm head.
    pub output: Device,
    /// Device of a weight, by its GGUF tensor name (an expert's name is its stacked tensor's
    /// name followed by ` expert N`).
    pub weight: Box<dyn Fn(&str) -> Device>,
}

impl Placement {
    fn layer(&self, layer: Option<usize>) -> Device {
        match layer {
            Some(l) => self.layers.get(l).copied().unwrap_or(Device::Cpu),
            None => self.output,
        }
    }
}

/// A weight on one of the two devices.
#[derive(Clone)]
pub enum HybridWeight {
    Cpu(CpuWeight),
    Gpu(GpuWeight),
}

impl HybridWeight {
    fn device(&self) -> Device {
        match self {
            HybridWeight::Cpu(_) => Device::Cpu,
            HybridWeight::Gpu(_) => Device::Gpu,
        }
    }
}

/// An activation tensor with a copy per device; `fresh_*` says which copies hold the current
/// values (a tensor nobody wrote yet is zero everywhere and has no copies).
pub struct HybridTensor {
    rows: usize,
    cols: usize,
    copies: RefCell<Copies>,
}

#[derive(Default)]
struct Copies {
    cpu: Option<CpuTensor>,
    gpu: Option<GpuTensor>,
    fresh_cpu: bool,
    fresh_gpu: bool,
}

/// A KV cache split by layer between the devices.
pub struct HybridCache {
    cpu: Option<CpuCache>,
    gpu: Option<GpuCache>,
    /// For each model layer: its device and its index in that device's cache.
    local: Vec<(Device, usize)>,
}

impl HybridCache {
    fn layer(&self, layer: usize) -> Result<(Device, usize)> {
        self.local
            .get(layer)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("KV cache has no layer {layer}")))
    }
}

/// Counters of what crossed between the devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    pub to_gpu: u64,
    pub to_cpu: u64,
    pub bytes: u64,
}

/// The CPU and wgpu backends as one (see the module docs).
pub struct HybridBackend {
    cpu: CpuBackend,
    gpu: WgpuBackend,
    placement: Placement,
    /// The layer being computed (`None`: before the first or after the last).
    layer: Cell<Option<usize>>,
    transfers: Cell<Transfers>,
}

impl HybridBackend {
    pub fn new(cpu: CpuBackend, gpu: WgpuBackend, placement: Placement) -> Self {
        Self {
            cpu,
            gpu,
            placement,
            layer: Cell::new(None),
            transfers: Cell::new(Transfers::default()),
        }
    }

    /// Copies made between the devices so far.
    pub fn transfers(&self) -> Transfers {
        self.transfers.get()
    }

    /// The GPU half.
    pub fn gpu(&self) -> &WgpuBackend {
        &self.gpu
    }

    /// Device of the ops that have no weight: the current layer's.
    fn here(&self) -> Device {
        self.placement.layer(self.layer.get())
    }

    fn count(&self, dev: Device, floats: usize) {
        let mut t = self.transfers.get();
        match dev {
            Device::Gpu => t.to_gpu += 1,
            Device::Cpu => t.to_cpu += 1,
        }
        t.bytes += floats as u64 * 4;
        self.transfers.set(t);
    }

    /// Makes `t`'s copy on `dev` current, copying from the other device if needed.
    fn sync(&self, t: &HybridTensor, dev: Device) -> Result<()> {
        let mut c = t.copies.borrow_mut();
        let c = &mut *c;
        match dev {
            Device::Cpu if !c.fresh_cpu => {
                let data = match (&c.gpu, c.fresh_gpu) {
                    (Some(g), true) => {
                        self.count(Device::Cpu, t.rows * t.cols);
                        block_on(self.gpu.download(g))?
                    }
                    _ => vec![0.0; t.rows * t.cols],
                };
                c.cpu = Some(CpuTensor {
                    rows: t.rows,
                    cols: t.cols,
                    data,
                });
                c.fresh_cpu = true;
            }
            Device::Gpu if !c.fresh_gpu => {
                match (&c.cpu, c.fresh_cpu) {
                    (Some(h), true) => {
                        self.count(Device::Gpu, t.rows * t.cols);
                        match &c.gpu {
                            Some(g) => self.gpu.write_tensor(g, &h.data)?,
                            None => c.gpu = Some(self.gpu.upload(&h.data, t.rows, t.cols)?),
                        }
                    }
                    _ => c.gpu = Some(self.gpu.tensor(t.rows, t.cols)),
                }
                c.fresh_gpu = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// `t` readable on the CPU (`read_gpu`: on the GPU).
    fn read_cpu<'a>(&self, t: &'a HybridTensor) -> Result<Ref<'a, CpuTensor>> {
        self.sync(t, Device::Cpu)?;
        Ok(Ref::map(t.copies.borrow(), |c| {
            c.cpu.as_ref().expect("synced")
        }))
    }

    fn read_gpu<'a>(&self, t: &'a HybridTensor) -> Result<Ref<'a, GpuTensor>> {
        self.sync(t, Device::Gpu)?;
        Ok(Ref::map(t.copies.borrow(), |c| {
            c.gpu.as_ref().expect("synced")
        }))
    }

    /// `t` writable on the CPU (`write_gpu`: on the GPU); the other copy becomes stale. With
    /// `keep`, the current values are brought over first (ops that write only part of the
    /// tensor or update it in place); without, the op overwrites every value.
    fn write_cpu<'a>(&self, t: &'a mut HybridTensor, keep: bool) -> Result<&'a mut CpuTensor> {
        if keep {
            self.sync(t, Device::Cpu)?;
        }
        let (rows, cols) = (t.rows, t.cols);
        let c = t.copies.get_mut();
        if c.cpu.is_none() {
            c.cpu = Some(CpuTensor {
                rows,
                cols,
                data: vec![0.0; rows * cols],
            });
        }
        c.fresh_cpu = true;
        c.fresh_gpu = false;
        Ok(c.cpu.as_mut().expect("allocated"))
    }

    fn write_gpu<'a>(&self, t: &'a mut HybridTensor, keep: bool) -> Result<&'a mut GpuTensor> {
        if keep {
            self.sync(t, Device::Gpu)?;
        }
        let (rows, cols) = (t.rows, t.cols);
        let c = t.copies.get_mut();
        if c.gpu.is_none() {
            c.gpu = Some(self.gpu.tensor(rows, cols));
        }
        c.fresh_gpu = true;
        c.fresh_cpu = false;
        Ok(c.gpu.as_mut().expect("allocated"))
    }
}

fn cpu_weight(w: &HybridWeight) -> Result<&CpuWeight> {
    match w {
        HybridWeight::Cpu(w) => Ok(w),
        HybridWeight::Gpu(_) => Err(Error::Invalid("a GPU weight in a CPU op".into())),
    }
}

fn gpu_weight(w: &HybridWeight) -> Result<&GpuWeight> {
    match w {
        HybridWeight::Gpu(w) => Ok(w),
        HybridWeight::Cpu(_) => Err(Error::Invalid("a CPU weight in a GPU op".into())),
    }
}

/// Runs `$body` with `$be` bound to the backend of device `$dev` and the listed tensors
/// bound to their copies there: `read` tensors by reference, `write` tensors (fully
/// overwritten) and `update` tensors (read and written) by mutable reference.
macro_rules! on {
    ($self:ident, $dev:expr, |$be:ident| read [$($r:ident),*] write [$($w:ident),*] update [$($u:ident),*] $body:block) => {
        match $dev {
            Device::Cpu => {
                let $be = &$self.cpu;
                $(let $r = $self.read_cpu($r)?; let $r = &*$r;)*
                $(let $w = $self.write_cpu($w, false)?;)*
                $(let $u = $self.write_cpu($u, true)?;)*
                $body
            }
            Device::Gpu => {
                let $be = &$self.gpu;
                $(let $r = $self.read_gpu($r)?; let $r = &*$r;)*
                $(let $w = $self.write_gpu($w, false)?;)*
                $(let $u = $self.write_gpu($u, true)?;)*
                $body
            }
        }
    };
}

impl Backend for HybridBackend {
    type Tensor = HybridTensor;
    type Weight = HybridWeight;
    type Cache = HybridCache;

    fn describe(&self) -> String {
        let on_gpu = self
            .placement
            .layers
            .iter()
            .filter(|d| **d == Device::Gpu)
            .count();
        format!(
            "{} + {} ({on_gpu} of {} layers on the GPU, output on the {})",
            self.cpu.describe(),
            self.gpu.describe(),
            self.placement.layers.len(),
            self.placement.output
        )
    }

    fn enter_layer(&self, layer: Option<usize>) {
        self.layer.set(layer);
    }

    fn load_weight(&self, w: WeightData) -> Result<HybridWeight> {
        Ok(match (self.placement.weight)(&w.name) {
            Device::Cpu => HybridWeight::Cpu(self.cpu.load_weight(w)?),
            Device::Gpu => HybridWeight::Gpu(self.gpu.load_weight(w)?),
        })
    }

    fn weight_rows(&self, w: &HybridWeight, first: usize, rows: usize) -> Result<HybridWeight> {
        Ok(match w {
            HybridWeight::Cpu(w) => HybridWeight::Cpu(self.cpu.weight_rows(w, first, rows)?),
            HybridWeight::Gpu(w) => HybridWeight::Gpu(self.gpu.weight_rows(w, first, rows)?),
        })
    }

    fn tensor(&self, rows: usize, cols: usize) -> HybridTensor {
        HybridTensor {
            rows,
            cols,
            copies: RefCell::new(Copies::default()),
        }
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<HybridTensor> {
        let cpu = self.cpu.upload(data, rows, cols)?;
        Ok(HybridTensor {
            rows,
            cols,
            copies: RefCell::new(Copies {
                cpu: Some(cpu),
                fresh_cpu: true,
                ..Copies::default()
            }),
        })
    }

    fn download<'a>(&'a self, t: &'a HybridTensor) -> LocalBoxFuture<'a, Result<Vec<f32>>> {
        let c = t.copies.borrow();
        match (&c.cpu, c.fresh_cpu, &c.gpu, c.fresh_gpu) {
            (Some(h), true, _, _) => Box::pin(std::future::ready(Ok(h.data.clone()))),
            (_, _, Some(g), true) => {
                let g = g.clone();
                Box::pin(async move { self.gpu.download(&g).await })
            }
            _ => Box::pin(std::future::ready(Ok(vec![0.0; t.rows * t.cols]))),
        }
    }

    fn shape(&self, t: &HybridTensor) -> (usize, usize) {
        (t.rows, t.cols)
    }

    fn new_cache(&self, spec: &CacheSpec) -> Result<HybridCache> {
        let mut local = Vec::with_capacity(spec.n_layer);
        let (mut n_cpu, mut n_gpu) = (0, 0);
        for l in 0..spec.n_layer {
            local.push(match self.placement.layer(Some(l)) {
                Device::Cpu => (Device::Cpu, post_inc(&mut n_cpu)),
                Device::Gpu => (Device::Gpu, post_inc(&mut n_gpu)),
            });
        }
        let part = |n_layer| CacheSpec {
            n_layer,
            ..spec.clone()
        };
        Ok(HybridCache {
            cpu: (n_cpu > 0)
                .then(|| self.cpu.new_cache(&part(n_cpu)))
                .transpose()?,
            gpu: (n_gpu > 0)
                .then(|| self.gpu.new_cache(&part(n_gpu)))
                .transpose()?,
            local,
        })
    }

    fn embed(&self, table: &HybridWeight, ids: &[u32], out: &mut HybridTensor) -> Result<()> {
        match table {
            HybridWeight::Cpu(w) => self.cpu.embed(w, ids, self.write_cpu(out, false)?),
            HybridWeight::Gpu(w) => self.gpu.embed(w, ids, self.write_gpu(out, false)?),
        }
    }

    fn rms_norm(
        &self,
        x: &HybridTensor,
        w: &HybridTensor,
        seg: Segments,
        eps: f32,
        out: &mut HybridTensor,
    ) -> Result<()> {
        on!(self, self.here(), |be| read [x, w] write [out] update [] {
            be.rms_norm(x, w, seg, eps, out)
        })
    }

    fn matmul(&self, w: &HybridWeight, x: &HybridTensor, out: &mut HybridTensor) -> Result<()> {
        match w {
            HybridWeight::Cpu(w) => {
                let x = &*self.read_cpu(x)?;
                self.cpu.matmul(w, x, self.write_cpu(out, false)?)
            }
            HybridWeight::Gpu(w) => {
                let x = &*self.read_gpu(x)?;
                self.gpu.matmul(w, x, self.write_gpu(out, false)?)
            }
        }
    }

    fn matmul_groups(
        &self,
        w: &HybridWeight,
        x: &HybridTensor,
        x_seg: Segments,
        out: &mut HybridTensor,
        out_seg: Segments,
    ) -> Result<()> {
        match w {
            HybridWeight::Cpu(w) => {
                let x = &*self.read_cpu(x)?;
                self.cpu
                    .matmul_groups(w, x, x_seg, self.write_cpu(out, true)?, out_seg)
            }
            HybridWeight::Gpu(w) => {
                let x = &*self.read_gpu(x)?;
                self.gpu
                    .matmul_groups(w, x, x_seg, self.write_gpu(out, true)?, out_seg)
            }
        }
    }

    fn rope(
        &self,
        x: &mut HybridTensor,
        seg: Segments,
        positions: &[u32],
        p: &RopeParams,
    ) -> Result<()> {
        on!(self, self.here(), |be| read [] write [] update [x] {
            be.rope(x, seg, positions, p)
        })
    }

    fn copy_segments(
        &self,
        src: &HybridTensor,
        src_seg: Segments,
        dst: &mut HybridTensor,
        dst_seg: Segments,
    ) -> Result<()> {
        on!(self, self.here(), |be| read [src] write [] update [dst] {
            be.copy_segments(src, src_seg, dst, dst_seg)
        })
    }

    fn copy_rows(&self, src: &HybridTensor, first: usize, dst: &mut HybridTensor) -> Result<()> {
        on!(self, self.here(), |be| read [src] write [dst] update [] {
            be.copy_rows(src, first, dst)
        })
    }

    fn cache_store(
        &self,
        cache: &mut HybridCache,
        layer: usize,
        start: usize,
        k: &HybridTensor,
        v: Option<&HybridTensor>,
    ) -> Result<()> {
        let (dev, local) = cache.layer(layer)?;
        match dev {
            Device::Cpu => {
                let k = &*self.read_cpu(k)?;
                let v = v.map(|v| self.read_cpu(v)).transpose()?;
                let c = cache.cpu.as_mut().expect("a CPU layer has a CPU cache");
                self.cpu.cache_store(c, local, start, k, v.as_deref())
            }
            Device::Gpu => {
                let k = &*self.read_gpu(k)?;
                let v = v.map(|v| self.read_gpu(v)).transpose()?;
                let c = cache.gpu.as_mut().expect("a GPU layer has a GPU cache");
                self.gpu.cache_store(c, local, start, k, v.as_deref())
            }
        }
    }

    fn attention(
        &self,
        cache: &HybridCache,
        layer: usize,
        q: &HybridTensor,
        start: usize,
        p: &AttnParams,
        out: &mut HybridTensor,
    ) -> Result<()> {
        let (dev, local) = cache.layer(layer)?;
        match dev {
            Device::Cpu => {
                let q = &*self.read_cpu(q)?;
                let c = cache.cpu.as_ref().expect("a CPU layer has a CPU cache");
                self.cpu
                    .attention(c, local, q, start, p, self.write_cpu(out, false)?)
            }
            Device::Gpu => {
                let q = &*self.read_gpu(q)?;
                let c = cache.gpu.as_ref().expect("a GPU layer has a GPU cache");
                self.gpu
                    .attention(c, local, q, start, p, self.write_gpu(out, false)?)
            }
        }
    }

    fn swiglu(&self, gate: &HybridTensor, up: &HybridTensor, out: &mut HybridTensor) -> Result<()> {
        on!(self, self.here(), |be| read [gate, up] write [out] update [] {
            be.swiglu(gate, up, out)
        })
    }

    fn hadamard(&self, x: &mut HybridTensor, n: usize) -> Result<()> {
        on!(self, self.here(), |be| read [] write [] update [x] { be.hadamard(x, n) })
    }

    fn add_assign(&self, acc: &mut HybridTensor, x: &HybridTensor) -> Result<()> {
        on!(self, self.here(), |be| read [x] write [] update [acc] { be.add_assign(acc, x) })
    }

    fn scale(&self, acc: &mut HybridTensor, s: f32) -> Result<()> {
        on!(self, self.here(), |be| read [] write [] update [acc] { be.scale(acc, s) })
    }

    fn moe_experts(
        &self,
        jobs: &[ExpertJob<'_, HybridWeight>],
        x: &HybridTensor,
        out: &mut HybridTensor,
    ) -> Result<()> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let dev = first.gate.device();
        match dev {
            Device::Cpu => {
                let inner = unwrap_jobs(jobs, cpu_weight)?;
                let x = &*self.read_cpu(x)?;
                self.cpu.moe_experts(&inner, x, self.write_cpu(out, true)?)
            }
            Device::Gpu => {
                let inner = unwrap_jobs(jobs, gpu_weight)?;
                let x = &*self.read_gpu(x)?;
                self.gpu.moe_experts(&inner, x, self.write_gpu(out, true)?)
            }
        }
    }

    fn moe_combine(
        &self,
        slots: &HybridTensor,
        weights: &[f32],
        k_used: usize,
        out: &mut HybridTensor,
    ) -> Result<()> {
        // Where the experts ran: combining there moves k_used times fewer values.
        let dev = if slots.copies.borrow().fresh_cpu {
            Device::Cpu
        } else {
            Device::Gpu
        };
        on!(self, dev, |be| read [slots] write [out] update [] {
            be.moe_combine(slots, weights, k_used, out)
        })
    }
}

/// The jobs with each weight replaced by its one-device form (`pick` fails on the other).
fn unwrap_jobs<'a, W>(
    jobs: &[ExpertJob<'a, HybridWeight>],
    pick: fn(&'a HybridWeight) -> Result<&'a W>,
) -> Result<Vec<ExpertJob<'a, W>>> {
    jobs.iter()
        .map(|j| {
            Ok(ExpertJob {
                gate: pick(j.gate)?,
                up: pick(j.up)?,
                down: pick(j.down)?,
                x_rows: j.x_rows,
                out_rows: j.out_rows,
            })
        })
        .collect()
}

fn post_inc(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}
