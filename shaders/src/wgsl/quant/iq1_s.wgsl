// IQ1_S (50 bytes, d moved to the end: 52): qs[32] @0, qh[8] (u16) @32, d @48. qh holds three
// 3-bit high index parts per group pair, a 3-bit scale and the delta sign.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let qh = wu16(b, 32u + 2u * ib);
    let dl = wf16(b, 48u) * f32(2u * ((qh >> 12u) & 7u) + 1u);
    let delta = select(IQ1_DELTA, -IQ1_DELTA, (qh & 0x8000u) != 0u);
    let idx = wbyte(b, 4u * ib + g) | (((qh >> (3u * g)) & 7u) << 8u);
    let v = vec4<f32>(sbytes4(grids[GRID_IQ1S + 2u * idx + h]));
    return dl * (v + delta);
}
