// Q1_0 (18 bytes, d moved to the end: 20): qs[16] @0, d @16; bit e set → +d, clear → −d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 16u);
    let bits = (vec4<u32>(wbyte(b, j >> 3u)) >> (vec4<u32>(j & 7u) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return select(vec4<f32>(-d), vec4<f32>(d), bits == vec4<u32>(1u));
}
