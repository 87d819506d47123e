// TQ2_0 (66 bytes, padded to 68): qs[64] @0, d @64. Half h, row r (32 elements each) take bit
// pair r of qs[32h + m]; values are (code − 1)·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let half = j >> 7u;
    let r = (j >> 5u) & 3u;
    let q = (bytes4(wload(b + 8u * half + ((j & 31u) >> 2u))) >> vec4<u32>(2u * r)) & vec4<u32>(3u);
    return vec4<f32>(vec4<i32>(q) - vec4<i32>(1)) * wf16(b, 64u);
}
