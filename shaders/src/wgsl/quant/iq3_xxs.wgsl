// IQ3_XXS (98 bytes, d moved to the end: 100): grid indices [64] @0, 8 × u32 (four 7-bit sign
// sets and a 4-bit scale) @64, d @96.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let aux = wload(b + 16u + ib);
    let db = wf16(b, 96u) * (0.5 + f32(aux >> 28u)) * 0.5;
    let grid = bytes4(grids[GRID_IQ3XXS + wbyte(b, 8u * ib + 2u * g + h)]);
    return apply_signs(db * vec4<f32>(grid), ksigns((aux >> (7u * g)) & 127u) >> (4u * h));
}
