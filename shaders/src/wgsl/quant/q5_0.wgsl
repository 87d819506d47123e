// Q5_0, repacked: qh (u32) @0, qs[16] @4, d @20. Bit e of qh is the fifth bit of element e;
// y = (q - 16)·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 20u);
    let lo = (bytes4(wload(b + 1u + ((j & 15u) >> 2u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
    let hi = (vec4<u32>(wload(b)) >> (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u))) & vec4<u32>(1u);
    return (vec4<f32>(lo | (hi << vec4<u32>(4u))) - 16.0) * d;
}
