// IQ2_XS (74 bytes, d moved to the end: 76): qs[32] (u16: 9-bit grid index, 7 sign bits) @0,
// scales[8] @64, d @72.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let q = wu16(b, 2u * (4u * ib + g));
    let s = (wbyte(b, 64u + ib) >> (4u * (g >> 1u))) & 15u;
    let db = wf16(b, 72u) * (0.5 + f32(s)) * 0.25;
    let grid = bytes4(grids[GRID_IQ2XS + 2u * (q & 511u) + h]);
    return apply_signs(db * vec4<f32>(grid), ksigns(q >> 9u) >> (4u * h));
}
