// Q5_K (176 bytes): as Q4_K with qh[32] @16 and qs[128] @48; bit 2c (low nibbles) or 2c+1
// (high nibbles) of qh[l] adds 16.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let c = j >> 6u;
    let hi = (j >> 5u) & 1u;
    let l = j & 31u;
    let sm = k_scale_min(b, 2u * c + hi);
    let dl = wf16(b, 0u) * f32(sm.x);
    let ml = wf16(b, 2u) * f32(sm.y);
    let lo = (bytes4(wload(b + 12u + 8u * c + (l >> 2u))) >> vec4<u32>(4u * hi)) & vec4<u32>(15u);
    let hb = (bytes4(wload(b + 4u + (l >> 2u))) >> vec4<u32>(2u * c + hi)) & vec4<u32>(1u);
    return dl * vec4<f32>(lo + hb * 16u) - ml;
}
