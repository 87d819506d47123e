//! sluice-shaders: the wgpu backend (Vulkan, Metal, DX12 natively; WebGPU in the browser).
//!
//! It implements sluice-core's backend operations as WGSL compute kernels. It holds no model
//! logic: the forward pass lives once, in core.
