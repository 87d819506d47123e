// IQ3_S (110 bytes, d moved to the end: 112): qs[64] @0, qh[8] @64, signs[32] @72,
// scales[4] @104, d @108.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let s = (wbyte(b, 104u + (ib >> 1u)) >> (4u * (ib & 1u))) & 15u;
    let db = wf16(b, 108u) * f32(1u + 2u * s);
    let high = (wbyte(b, 64u + ib) >> (2u * g + h)) & 1u;
    let grid = bytes4(grids[GRID_IQ3S + (wbyte(b, 8u * ib + 2u * g + h) | (high << 8u))]);
    return apply_signs(db * vec4<f32>(grid), wbyte(b, 72u + 4u * ib + g) >> (4u * h));
}
