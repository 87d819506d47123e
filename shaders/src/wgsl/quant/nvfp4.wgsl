// NVFP4 (36 bytes): d[4] (UE4M3, one per 16 elements) @0, qs[32] @4. Sub-block s uses
// qs[8s..8s+8]: low nibbles for its first 8 elements, high nibbles for the next 8.
fn ue4m3_half(x: u32) -> f32 {
    if (x == 0u || x == 0x7fu) {
        return 0.0;
    }
    let e = i32((x >> 3u) & 15u);
    let m = f32(x & 7u);
    var raw: f32;
    if (e == 0) {
        raw = m * ldexp(1.0, -9);
    } else {
        raw = (1.0 + m * 0.125) * ldexp(1.0, e - 7);
    }
    return raw * 0.5;
}

fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let s = j >> 4u;
    let k = j & 15u;
    let d = ue4m3_half(wbyte(b, s));
    let q = (bytes4(wload(b + 1u + 2u * s + ((k & 7u) >> 2u))) >> vec4<u32>(4u * (k >> 3u))) & vec4<u32>(15u);
    return kvalues4(GRID_FP4, q) * d;
}
