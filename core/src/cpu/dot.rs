//! Adapter from the matmul code to the per-type dot kernels.
//!
//! Until the kernel table lands, every type goes through the f32 fallback (dequantize the
//! weight row, f32 dot).

use crate::quant::GgmlType;

/// How rows of one weight type are multiplied with activations.
pub struct Kernel {
    pub act: GgmlType,
    pub quantize_act: fn(&[f32], &mut [u8]),
    pub vec_dot: fn(usize, &[u8], &[u8]) -> f32,
}

pub fn kernel(_ty: GgmlType) -> Option<&'static Kernel> {
    None
}

/// Converts `values` to one stored row of `ty` (cache rows).
pub fn store_row(ty: GgmlType, values: &[f32], dst: &mut [u8]) -> crate::Result<()> {
    if ty == GgmlType::F32 {
        dst.copy_from_slice(bytemuck::cast_slice(values));
    } else if ty == GgmlType::F16 {
        for (d, v) in dst.chunks_exact_mut(2).zip(values) {
            d.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
    } else {
        return Err(crate::Error::Unsupported(format!("cache type {ty}")));
    }
    Ok(())
}
