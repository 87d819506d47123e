//! Batched matmul on decoded weight panels: the prompt-processing path for k-quant weights on
//! x86 CPUs with AVX-512 VNNI (see `x86::panel` for the layout and the arithmetic).
//!
//! A caller with a batch of activation rows decodes [`ROWS`] consecutive weight rows into a
//! scratch panel ([`pack`]) once, then multiplies it with every activation row ([`gemm`]).
//! [`panel_bytes`] says whether the active instruction set has a panel kernel for a type; when
//! it returns `None` callers use the one-row kernels of [`super::dot_kernel`].

#[cfg(target_arch = "x86_64")]
use super::isa::{active_isa, Isa};
use crate::quant::GgmlType;

/// Weight rows per panel.
pub const ROWS: usize = 16;

/// Scratch bytes of one panel of `cols`-column rows of `ty`, or `None` when the active ISA
/// has no panel kernel for `ty` (or `cols` is not whole blocks of it).
pub fn panel_bytes(ty: GgmlType, cols: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if active_isa() == Isa::Avx512 {
            return super::x86::panel::panel_bytes(ty, cols);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ty, cols);
    None
}

/// Decodes [`ROWS`] weight rows (`row_bytes` apart from the start of `w`) into `panel`
/// (at least [`panel_bytes`] long). False when there is no panel kernel or a slice is short.
pub fn pack(ty: GgmlType, cols: usize, w: &[u8], row_bytes: usize, panel: &mut [u8]) -> bool {
    if panel_bytes(ty, cols).is_none() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        super::x86::panel::pack(ty, cols, w, row_bytes, panel)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, row_bytes, panel);
        false
    }
}

/// `out[i·n + t] = (weight row i of the panel) · (activation row t)` for `n` activation rows
/// of the type's activation format, `stride` bytes apart. False (nothing written) when there
/// is no panel kernel or a slice is short.
pub fn gemm(
    ty: GgmlType,
    cols: usize,
    panel: &[u8],
    acts: &[u8],
    stride: usize,
    n: usize,
    out: &mut [f32],
) -> bool {
    if panel_bytes(ty, cols).is_none() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        super::x86::panel::gemm_rows(ty, cols, panel, acts, stride, n, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (panel, acts, stride, n, out);
        false
    }
}
