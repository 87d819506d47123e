//! Which instruction set the CPU kernels use, decided once per process.

use super::{DotKernel, KERNELS};
use crate::quant::GgmlType;
use std::sync::OnceLock;

/// A family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The portable kernels (the reference).
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX2 and AVX-512 F/BW/VL + VNNI: the AVX2 kernels compiled with 32 vector
    /// registers and VNNI byte dot products (see `x86`'s module docs).
    Avx512,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
    /// wasm32 built with `-C target-feature=+simd128`.
    Simd128,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Simd128 => "simd128",
        }
    }

    /// Whether this process can run the ISA's kernels.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => super::x86::available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => super::x86::available_wide(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether the ISA is one of the x86-64 builds (which share the activation converters).
    pub fn is_x86(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::Avx512)
    }

    /// Every ISA this process can run, the scalar one first (the best last).
    pub fn all_available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Simd128]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }
}

/// The ISA the backend uses: the best available, unless `SLUICE_CPU_ISA` names another
/// available one (`scalar`, `avx2`, `avx512`, `neon`, `simd128`).
pub fn active_isa() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let all = Isa::all_available();
        #[cfg(not(target_arch = "wasm32"))]
        if let Ok(want) = std::env::var("SLUICE_CPU_ISA") {
            if let Some(&isa) = all.iter().find(|i| i.name() == want) {
                return isa;
            }
        }
        *all.last().unwrap_or(&Isa::Scalar)
    })
}

/// The kernel table of `isa`, or `None` if this process cannot run it.
pub fn kernels_for(isa: Isa) -> Option<&'static [DotKernel]> {
    if !isa.available() {
        return None;
    }
    match isa {
        Isa::Scalar => Some(KERNELS),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            static T: OnceLock<Vec<DotKernel>> = OnceLock::new();
            Some(T.get_or_init(|| super::x86::table(KERNELS, false)))
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            static T: OnceLock<Vec<DotKernel>> = OnceLock::new();
            Some(T.get_or_init(|| super::x86::table(KERNELS, true)))
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            static T: OnceLock<Vec<DotKernel>> = OnceLock::new();
            Some(T.get_or_init(|| super::neon::table(KERNELS)))
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => {
            static T: OnceLock<Vec<DotKernel>> = OnceLock::new();
            Some(T.get_or_init(|| super::wasm::table(KERNELS)))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The kernel for weights of type `weight` in the active ISA, or `None` if the CPU cannot
/// multiply that type (activation-only formats, integer types, removed ids).
pub fn dot_kernel(weight: GgmlType) -> Option<&'static DotKernel> {
    kernels_for(active_isa())
        .unwrap_or(KERNELS)
        .iter()
        .find(|k| k.weight == weight)
}
