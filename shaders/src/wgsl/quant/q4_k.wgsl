// Q4_K (144 bytes): d @0, dmin @2, scales[12] @4 (8 × 6-bit scale/min), qs[128] @16.
// Chunk c of 64 elements uses q = qs[32c..]: low nibbles with sub-block 2c, high with 2c+1.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let c = j >> 6u;
    let hi = (j >> 5u) & 1u;
    let l = j & 31u;
    let sm = k_scale_min(b, 2u * c + hi);
    let dl = wf16(b, 0u) * f32(sm.x);
    let ml = wf16(b, 2u) * f32(sm.y);
    let q = (bytes4(wload(b + 4u + 8u * c + (l >> 2u))) >> vec4<u32>(4u * hi)) & vec4<u32>(15u);
    return dl * vec4<f32>(q) - ml;
}
