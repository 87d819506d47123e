// IQ1_M (56 bytes): qs[32] @0, qh[16] @32, scales (4 × u16) @48 whose top nibbles form the f16
// super-scale d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let g = (j >> 3u) & 3u;
    let h = (j >> 2u) & 1u;
    let bits = (wu16(b, 48u) >> 12u) | ((wu16(b, 50u) >> 8u) & 0xf0u)
        | ((wu16(b, 52u) >> 4u) & 0xf00u) | (wu16(b, 54u) & 0xf000u);
    let d = unpack2x16float(bits).x;
    let word = wu16(b, 48u + 2u * (ib >> 1u)) >> (6u * (ib & 1u));
    let dl = d * f32(2u * ((word >> (3u * (g >> 1u))) & 7u) + 1u);
    let nib = wbyte(b, 32u + 2u * ib + (g >> 1u)) >> (4u * (g & 1u));
    let idx = wbyte(b, 4u * ib + g) | ((nib & 7u) << 8u);
    let delta = select(IQ1_DELTA, -IQ1_DELTA, (nib & 8u) != 0u);
    let v = vec4<f32>(sbytes4(grids[GRID_IQ1S + 2u * idx + h]));
    return dl * (v + delta);
}
