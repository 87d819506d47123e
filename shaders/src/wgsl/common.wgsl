// Helpers every kernel may use.

const NO_INDEX: u32 = 0xffffffffu;
// Workgroups along x before spilling into y (grids wider than one dispatch dimension allows).
const GRID_X: u32 = 32768u;

// The four bytes of a word, least significant first.
fn bytes4(w: u32) -> vec4<u32> {
    return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u);
}

// The four bytes of a word as signed 8-bit values.
fn sbytes4(w: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
}

// A byte (0..255) as a signed 8-bit value.
fn sbyte(v: u32) -> i32 {
    return bitcast<i32>(v << 24u) >> 24u;
}

// Negates v[i] where bit i of s is set.
fn apply_signs(v: vec4<f32>, s: u32) -> vec4<f32> {
    let bits = (vec4<u32>(s) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return select(v, -v, bits == vec4<u32>(1u));
}

// Index of a workgroup in a grid laid out GRID_X wide.
fn group_index(wid: vec3<u32>) -> u32 {
    return wid.y * GRID_X + wid.x;
}

// The f16 nearest to v (ties to even) as bits; overflow gives ±inf, NaN stays NaN. WGSL leaves
// the rounding of pack2x16float to the implementation (NVIDIA's Vulkan driver does not round
// to nearest), and ggml converts with round-to-nearest-even, so conversions that must match
// the CPU go through this.
fn f16_rne_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        return sign | 0x7c00u | select(0u, 0x200u, a > 0x7f800000u);
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        return sign | ((a + 0x0fffu + ((a >> 13u) & 1u) - 0x38000000u) >> 13u);
    }
    if (a < 0x33000000u) {
        return sign;
    }
    // a subnormal f16: the 24-bit significand shifted down to units of 2^-24
    let s = 126u - (a >> 23u);
    let m = (a & 0x7fffffu) | 0x800000u;
    let q = m >> s;
    let rem = m & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    return sign | (q + select(0u, 1u, rem > half || (rem == half && (q & 1u) == 1u)));
}

// v rounded to the nearest f16 (ties to even), as an f32.
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(f16_rne_bits(v)).x;
}

// a / b rounded as the CPU rounds it: Vulkan lets a division be off by 2.5 ulp, so the
// quotient gets one correction step from its fused residual.
fn div_rn(a: f32, b: f32) -> f32 {
    let q = a / b;
    return q + fma(-q, b, a) / b;
}
