//! The CPU backend: portable kernels with llama.cpp's CPU numerics.
//!
//! [`kernels`] holds the per-type dot products and activation converters that every CPU matmul
//! is built from.

pub mod kernels;
