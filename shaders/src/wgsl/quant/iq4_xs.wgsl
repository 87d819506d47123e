// IQ4_XS (136 bytes): d @0, scales_h (u16) @2, scales_l[4] @4, qs[128] @8. Sub-block ib has a
// 6-bit scale (4 low bits from scales_l, 2 high from scales_h) minus 32.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let ib = j >> 5u;
    let k = j & 31u;
    let ls = ((wbyte(b, 4u + (ib >> 1u)) >> (4u * (ib & 1u))) & 15u)
        | (((wu16(b, 2u) >> (2u * ib)) & 3u) << 4u);
    let dl = wf16(b, 0u) * f32(i32(ls) - 32);
    let q = (bytes4(wload(b + 2u + 4u * ib + ((k & 15u) >> 2u))) >> vec4<u32>(4u * (k >> 4u))) & vec4<u32>(15u);
    return dl * kvalues4(GRID_IQ4NL, q);
}
