// MXFP4 (17 bytes, e moved to the end: 20): qs[16] @0, e (E8M0) @16. The doubled E2M1 codebook
// is scaled by 2^(e − 128), half the E8M0 value (denormal for e < 2).
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let e = wbyte(b, 16u);
    let d = bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u));
    let q = (bytes4(wload(b + ((j & 15u) >> 2u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
    return kvalues4(GRID_FP4, q) * d;
}
