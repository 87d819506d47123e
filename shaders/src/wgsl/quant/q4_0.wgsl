// Q4_0, repacked: qs[16] @0, d @16. Element e < 16 is the low nibble of qs[e], e >= 16 the
// high nibble of qs[e - 16]; y = (q - 8)·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 16u);
    let q = (bytes4(wload(b + ((j & 15u) >> 2u))) >> vec4<u32>((j >> 4u) * 4u)) & vec4<u32>(15u);
    return (vec4<f32>(q) - 8.0) * d;
}
