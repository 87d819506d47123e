// Q2_K (84 bytes, already aligned): scales[16] @0 (low nibble scale, high nibble min),
// qs[64] @16, d @80, dmin @82. Each 128-element half takes 32 q bytes; shift s = 0, 2, 4, 6
// then group (q[0..16] / q[16..32]) select 16 elements and one scale byte.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let half = j >> 7u;
    let k = j & 127u;
    let s = k >> 5u;
    let group = (k >> 4u) & 1u;
    let sc = wbyte(b, 8u * half + 2u * s + group);
    let dl = wf16(b, 80u) * f32(sc & 15u);
    let ml = wf16(b, 82u) * f32(sc >> 4u);
    let w = wload(b + 4u + 8u * half + 4u * group + ((k & 15u) >> 2u));
    let q = (bytes4(w) >> vec4<u32>(2u * s)) & vec4<u32>(3u);
    return dl * vec4<f32>(q) - ml;
}
