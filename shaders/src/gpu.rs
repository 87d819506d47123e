//! The device, and every wgpu call whose shape changes between wgpu releases, in one place.
//!
//! wgpu's API moves (descriptor fields, poll and map signatures, error scopes); the rest of
//! the crate goes through [`Gpu`] so an upgrade touches this file. Validation errors never
//! panic: the uncaptured-error handler records them and [`Gpu::check`] turns them into an
//! `Err` at the next synchronisation point.

use sluice_core::source::LocalBoxFuture;
use sluice_core::{Error, Result};
use std::sync::{Arc, Mutex};

/// How to pick and configure the adapter.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Caps the bytes of one storage binding below the adapter's limit (tests use a small
    /// value to exercise weights split across bindings).
    pub max_binding_bytes: Option<u64>,
    /// Use subgroup operations when the adapter has them.
    pub subgroups: bool,
    /// Prefer a software adapter (lavapipe, SwiftShader).
    pub force_fallback: bool,
    /// Which adapter (native): its index in `sluice devices`, llama.cpp's name for it
    /// (`Vulkan0`: the first Vulkan adapter) or part of its name (`H200`). `None`: the
    /// preferred high-performance adapter.
    pub adapter: Option<String>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            max_binding_bytes: None,
            subgroups: true,
            force_fallback: false,
            adapter: None,
        }
    }
}

/// What an adapter is and can do, for `describe()` and device listings.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_buffer_size: u64,
    pub max_storage_binding: u64,
    pub max_storage_buffers: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
}

impl AdapterSummary {
    fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits, features: wgpu::Features) -> Self {
        Self {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_buffer_size: limits.max_buffer_size,
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        }
    }
}

/// An open device (clones share it).
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Subgroup operations are enabled on the device.
    pub subgroups: bool,
    errors: Arc<Mutex<Vec<String>>>,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle())
}

/// Every adapter the instance can see (native; the browser exposes one through `open`).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<AdapterSummary> {
    let adapters =
        sluice_core::source::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters
        .iter()
        .map(|a| AdapterSummary::new(&a.get_info(), &a.limits(), a.features()))
        .collect()
}

/// llama.cpp's name for adapter `i` of `adapters`: its backend and its rank among that
/// backend's adapters (`Vulkan0`).
pub fn device_name(adapters: &[AdapterSummary], i: usize) -> String {
    let backend = &adapters[i].backend;
    let nth = adapters[..i]
        .iter()
        .filter(|a| a.backend == *backend)
        .count();
    let mut name = backend.clone();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{name}{nth}")
}

/// The adapter `wanted` names: an index in [`list_adapters`]'s order, its [`device_name`]
/// (`Vulkan0`), or a part of its name.
#[cfg(not(target_arch = "wasm32"))]
async fn pick_adapter(wanted: &str) -> Result<wgpu::Adapter> {
    let adapters = instance().enumerate_adapters(wgpu::Backends::all()).await;
    let summaries: Vec<AdapterSummary> = adapters
        .iter()
        .map(|a| AdapterSummary::new(&a.get_info(), &a.limits(), a.features()))
        .collect();
    let w = wanted.trim().to_ascii_lowercase();
    let n = summaries.len();
    let found = w
        .parse::<usize>()
        .ok()
        .filter(|&i| i < n)
        .or_else(|| (0..n).find(|&i| device_name(&summaries, i).eq_ignore_ascii_case(&w)))
        .or_else(|| (0..n).find(|&i| summaries[i].name.to_ascii_lowercase().contains(&w)));
    match found {
        Some(i) => Ok(adapters.into_iter().nth(i).expect("index in range")),
        None => {
            let names: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{i}: {} ({})",
                        summaries[i].name,
                        device_name(&summaries, i)
                    )
                })
                .collect();
            Err(Error::Unsupported(format!(
                "--device {wanted}: no such adapter (have: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )))
        }
    }
}

impl Gpu {
    /// Opens the preferred adapter with the limits and features the kernels use.
    pub async fn open(opts: &GpuOptions) -> Result<Gpu> {
        let adapter = match &opts.adapter {
            #[cfg(not(target_arch = "wasm32"))]
            Some(wanted) => pick_adapter(wanted).await?,
            _ => instance()
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    force_fallback_adapter: opts.force_fallback,
                    compatible_surface: None,
                    apply_limit_buckets: false,
                })
                .await
                .map_err(|e| Error::Unsupported(format!("no GPU adapter: {e}")))?,
        };
        let features = adapter.features();
        // Row reductions shuffle within groups of ROW_THREADS lanes of one subgroup.
        let subgroups = opts.subgroups
            && features.contains(wgpu::Features::SUBGROUP)
            && adapter.get_info().subgroup_min_size >= crate::compose::ROW_THREADS;
        let mut required = wgpu::Features::empty();
        if subgroups {
            required |= wgpu::Features::SUBGROUP;
        }
        if features.contains(wgpu::Features::SHADER_F16) {
            required |= wgpu::Features::SHADER_F16;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("sluice"),
                required_features: required,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Unsupported(format!("GPU device: {e}")))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let mut limits = device.limits();
        if let Some(cap) = opts.max_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap);
        }
        Ok(Gpu {
            adapter: AdapterSummary::new(&adapter.get_info(), &device.limits(), device.features()),
            device,
            queue,
            limits,
            subgroups,
            errors,
        })
    }

    /// The first device error since the last check, as an `Err`.
    pub fn check(&self) -> Result<()> {
        let mut errs = self
            .errors
            .lock()
            .map_err(|_| Error::io("gpu", "error log poisoned"))?;
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::io(format!("gpu ({})", self.adapter.name), msg))
    }

    /// A buffer for activations, caches or weights (storage, copy source and destination).
    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer whose contents are written by `fill` (given the mapped bytes, a
    /// multiple of 4) before the GPU sees it.
    pub fn storage_with(
        &self,
        label: &str,
        bytes: u64,
        fill: impl FnOnce(&mut dyn FnMut(usize, &[u8])),
    ) -> Result<wgpu::Buffer> {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: true,
        });
        {
            let mut view = buf
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| Error::io("gpu", format!("mapping a new buffer ({label}): {e}")))?;
            let mut write = |at: usize, data: &[u8]| {
                view.slice(at..at + data.len()).copy_from_slice(data);
            };
            fill(&mut write);
        }
        buf.unmap();
        Ok(buf)
    }

    /// The per-batch parameter arena (uniform and read-only storage, written by the queue).
    pub fn arena(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sluice params"),
            size: bytes,
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Compiles a compute pipeline with an automatic layout.
    pub fn pipeline(&self, label: &str, wgsl: &str) -> wgpu::ComputePipeline {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    // Kernels initialise what they read; skipping the zeroing saves a pass.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    pub fn begin_pass(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'static> {
        encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            })
            .forget_lifetime()
    }

    pub fn buffer_binding(buf: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: buf,
            offset,
            size: wgpu::BufferSize::new(size),
        })
    }

    /// Copies `bytes` of `src` from `offset` to the host, once all submitted work is done.
    pub fn read_back(
        &self,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> LocalBoxFuture<'static, Result<Vec<u8>>> {
        let size = bytes.max(4).next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sluice read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let slot: Arc<Mutex<MapSlot>> = Arc::default();
        let done = slot.clone();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            if let Ok(mut s) = done.lock() {
                s.result = Some(r.map_err(|e| e.to_string()));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        });
        // Native: wait here (map callbacks run inside poll). The browser resolves the map on
        // its own event loop, which the returned future waits for.
        #[cfg(not(target_arch = "wasm32"))]
        let polled = self
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::io("gpu", format!("waiting for the device: {e}")));
        #[cfg(target_arch = "wasm32")]
        let polled: Result<()> = Ok(());
        let check = self.check();
        Box::pin(async move {
            polled?;
            check?;
            MapWait(slot.clone())
                .await
                .map_err(|e| Error::io("gpu", format!("reading results back: {e}")))?;
            let data = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::io("gpu", format!("reading results back: {e}")))?
                .to_vec();
            staging.unmap();
            Ok(data[..bytes as usize].to_vec())
        })
    }
}

#[derive(Default)]
struct MapSlot {
    result: Option<std::result::Result<(), String>>,
    waker: Option<std::task::Waker>,
}

/// Resolves when a buffer's map callback has run.
struct MapWait(Arc<Mutex<MapSlot>>);

impl std::future::Future for MapWait {
    type Output = std::result::Result<(), String>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Ok(mut s) = self.0.lock() else {
            return std::task::Poll::Ready(Err("map state poisoned".into()));
        };
        match s.result.take() {
            Some(r) => std::task::Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}
