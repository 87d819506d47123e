// IQ2_XXS (66 bytes, d moved to the end: 68): 8 chunks of (4 grid-index bytes, u32 of four
// 7-bit sign sets and a 4-bit scale) @0, d @64.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let idx = wload(b + 2u * ib);
    let aux = wload(b + 2u * ib + 1u);
    let db = wf16(b, 64u) * (0.5 + f32(aux >> 28u)) * 0.25;
    let grid = bytes4(grids[GRID_IQ2XXS + 2u * ((idx >> (8u * g)) & 255u) + h]);
    return apply_signs(db * vec4<f32>(grid), ksigns((aux >> (7u * g)) & 127u) >> (4u * h));
}
