// Q4_1, repacked: qs[16] @0, d @16, m @18; y = q·d + m.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 16u);
    let m = wf16(b, 18u);
    let q = (bytes4(wload(b + ((j & 15u) >> 2u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
    return vec4<f32>(q) * d + m;
}

// The block's min m: products with Q8_1 activations add m·(correction of the block's sum).
fn block_min(b: u32) -> f32 {
    return wf16(b, 18u);
}
