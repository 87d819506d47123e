//! sluice-shaders: the wgpu backend (Vulkan, Metal, DX12 natively; WebGPU in the browser).
//!
//! It implements sluice-core's [`Backend`](sluice_core::backend::Backend) as WGSL compute
//! kernels and holds no model logic: the forward pass lives once, in core.
//!
//! - [`formats`]: each ggml type's GPU block layout and its `dequant4` snippet (data);
//! - [`compose`]: generic kernels composed with a format and feature variant into WGSL;
//! - [`gpu`]: the device and every version-sensitive wgpu call;
//! - `recorder`: the pipeline cache, the parameter arena and command recording;
//! - `weights`: repacking and splitting weights across buffers;
//! - [`WgpuBackend`] (`backend`, `products`, `ops`): the ops;
//! - [`hybrid`]: the CPU and wgpu backends as one, for partial offload (native only).

mod backend;
pub mod compose;
pub mod formats;
pub mod gpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod hybrid;
mod ops;
mod products;
mod recorder;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod weights;

pub use backend::{GpuCache, GpuTensor, WgpuBackend};
pub use gpu::{AdapterSummary, GpuOptions};
pub use weights::GpuWeight;
