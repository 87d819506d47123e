//! Recording ops: the pipeline cache, the parameter arena and the open command encoder.
//!
//! Ops are recorded, not executed: each becomes a dispatch (or a buffer copy) in one command
//! encoder that is submitted when results are read back (or when the arena fills up). Every
//! dispatch's uniform parameters and host-side data (token ids, gather lists, rope tables,
//! routing weights) are appended to one staging vector that is written to the arena buffer
//! right before the submit; queue writes are ordered before the submitted commands, so one
//! arena serves every batch.

use crate::compose::{compose, KernelSpec, ShaderKey, Val};
use crate::gpu::Gpu;
use sluice_core::{Error, Result};
use std::collections::HashMap;
use std::rc::Rc;

/// A compiled kernel and its bind group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub spec: &'static KernelSpec,
}

/// A buffer range bound to a kernel.
#[derive(Clone, Copy)]
pub enum Bind<'a> {
    /// A whole buffer.
    Buf(&'a wgpu::Buffer),
    /// The host data written with this dispatch.
    Host,
}

const ARENA_START: u64 = 4 << 20;

pub struct Recorder {
    pipelines: HashMap<ShaderKey, Rc<Pipeline>>,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    arena: wgpu::Buffer,
    staging: Vec<u8>,
    align: u64,
}

impl Recorder {
    pub fn new(gpu: &Gpu) -> Self {
        let align = gpu
            .limits
            .min_uniform_buffer_offset_alignment
            .max(gpu.limits.min_storage_buffer_offset_alignment)
            .max(16) as u64;
        Self {
            pipelines: HashMap::new(),
            encoder: None,
            pass: None,
            arena: gpu.arena(ARENA_START),
            staging: Vec::new(),
            align,
        }
    }

    /// The pipeline for `key`, compiled on first use.
    pub fn pipeline(&mut self, gpu: &Gpu, key: &ShaderKey) -> Result<Rc<Pipeline>> {
        if let Some(p) = self.pipelines.get(key) {
            return Ok(p.clone());
        }
        let spec = KernelSpec::get(key.kernel)?;
        let src = compose(key)?;
        let pipeline = gpu.pipeline(&key.label(), &src);
        gpu.check()
            .map_err(|e| Error::io("gpu", format!("compiling {}: {e}", key.label())))?;
        let layout = pipeline.get_bind_group_layout(0);
        let p = Rc::new(Pipeline {
            pipeline,
            layout,
            spec,
        });
        self.pipelines.insert(key.clone(), p.clone());
        Ok(p)
    }

    /// Number of compiled pipelines.
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    fn reserve(&mut self, bytes: usize) -> u64 {
        let at = (self.staging.len() as u64).next_multiple_of(self.align);
        self.staging.resize(at as usize, 0);
        self.staging.resize(at as usize + bytes, 0);
        at
    }

    /// Records one dispatch of `key` over `grid` workgroups with named parameters, `host`
    /// words, buffers in the kernel's declared order, then weight parts (and the grids).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &mut self,
        gpu: &Gpu,
        key: &ShaderKey,
        params: &[(&str, Val)],
        host: &[u32],
        buffers: &[Bind<'_>],
        extra: &[&wgpu::Buffer],
        grid: [u32; 3],
    ) -> Result<()> {
        if grid.contains(&0) {
            return Ok(());
        }
        let pipe = self.pipeline(gpu, key)?;
        let words = pipe.spec.params_words(params)?;
        if buffers.len() != pipe.spec.buffers.len() {
            return Err(Error::Invalid(format!(
                "kernel {}: {} buffers given, {} declared",
                key.kernel,
                buffers.len(),
                pipe.spec.buffers.len()
            )));
        }
        let param_bytes = (words.len() * 4).next_multiple_of(16).max(16);
        let host_bytes = (host.len() * 4).max(16);
        let need = param_bytes as u64 + host_bytes as u64 + 2 * self.align;
        if self.staging.len() as u64 + need > self.arena.size() {
            self.flush(gpu)?;
            if need > self.arena.size() {
                self.arena = gpu.arena(need.next_power_of_two());
            }
        }
        let p_at = self.reserve(param_bytes);
        self.staging[p_at as usize..p_at as usize + words.len() * 4]
            .copy_from_slice(bytemuck::cast_slice(&words));
        let h_at = self.reserve(host_bytes);
        self.staging[h_at as usize..h_at as usize + host.len() * 4]
            .copy_from_slice(bytemuck::cast_slice(host));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: Gpu::buffer_binding(&self.arena, p_at, param_bytes as u64),
        }];
        for (i, b) in buffers.iter().enumerate() {
            let resource = match b {
                Bind::Buf(buf) => buf.as_entire_binding(),
                Bind::Host => Gpu::buffer_binding(&self.arena, h_at, host_bytes as u64),
            };
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource,
            });
        }
        for (i, buf) in extra.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: (buffers.len() + i) as u32 + 1,
                resource: buf.as_entire_binding(),
            });
        }
        let group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        });
        let encoder = self.encoder.get_or_insert_with(|| gpu.encoder());
        let pass = self.pass.get_or_insert_with(|| Gpu::begin_pass(encoder));
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        Ok(())
    }

    /// Records a buffer-to-buffer copy (between dispatches).
    pub fn copy(
        &mut self,
        gpu: &Gpu,
        src: &wgpu::Buffer,
        src_at: u64,
        dst: &wgpu::Buffer,
        dst_at: u64,
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        self.pass = None;
        let encoder = self.encoder.get_or_insert_with(|| gpu.encoder());
        encoder.copy_buffer_to_buffer(src, src_at, dst, dst_at, bytes);
    }

    /// Submits everything recorded so far.
    pub fn flush(&mut self, gpu: &Gpu) -> Result<()> {
        self.pass = None;
        if let Some(enc) = self.encoder.take() {
            if !self.staging.is_empty() {
                gpu.queue.write_buffer(&self.arena, 0, &self.staging);
            }
            gpu.queue.submit([enc.finish()]);
        }
        self.staging.clear();
        gpu.check()
    }
}

/// Splits `n` workgroups into a grid at most `GRID_X` wide (see `group_index` in WGSL).
pub fn linear_grid(n: u32) -> [u32; 2] {
    const GRID_X: u32 = 32768;
    [n.min(GRID_X), n.div_ceil(GRID_X)]
}
