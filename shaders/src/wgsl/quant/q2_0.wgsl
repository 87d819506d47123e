// Q2_0 (18 bytes, d moved to the end: 20): qs[16] @0, d @16; element e is bit pair e % 4 of
// qs[e / 4], valued (code − 1)·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let q = (vec4<u32>(wbyte(b, j >> 2u)) >> vec4<u32>(0u, 2u, 4u, 6u)) & vec4<u32>(3u);
    return vec4<f32>(vec4<i32>(q) - vec4<i32>(1)) * wf16(b, 16u);
}
