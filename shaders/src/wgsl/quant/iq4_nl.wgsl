// IQ4_NL, repacked: qs[16] @0, d @16; nibbles index the non-linear codebook.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 16u);
    let q = (bytes4(wload(b + ((j & 15u) >> 2u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
    return d * kvalues4(GRID_IQ4NL, q);
}
