// IQ2_S (82 bytes, d moved to the end: 84): grid low bytes qs[32] @0, sign bytes [32] @32,
// qh[8] @64 (2 high index bits per group), scales[8] @72, d @80.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let idx = wbyte(b, 4u * ib + g) | (((wbyte(b, 64u + ib) >> (2u * g)) & 3u) << 8u);
    let s = (wbyte(b, 72u + ib) >> (4u * (g >> 1u))) & 15u;
    let db = wf16(b, 80u) * (0.5 + f32(s)) * 0.25;
    let grid = bytes4(grids[GRID_IQ2S + 2u * idx + h]);
    return apply_signs(db * vec4<f32>(grid), wbyte(b, 32u + 4u * ib + g) >> (4u * h));
}
