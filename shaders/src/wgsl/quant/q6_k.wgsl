// Q6_K (210 bytes, padded to 212): ql[128] @0, qh[64] @128, scales[16] (i8) @192, d @208.
// Half n, quarter r (32 elements each), position l: low 4 bits from nibble r/2 of
// ql[64n + 32(r%2) + l], high 2 bits from bits 2r of qh[32n + l]; scale 8n + l/16 + 2r.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let n = j >> 7u;
    let r = (j >> 5u) & 3u;
    let l = j & 31u;
    let lo = (bytes4(wload(b + 16u * n + 8u * (r & 1u) + (l >> 2u))) >> vec4<u32>(4u * (r >> 1u))) & vec4<u32>(15u);
    let hi = (bytes4(wload(b + 32u + 8u * n + (l >> 2u))) >> vec4<u32>(2u * r)) & vec4<u32>(3u);
    let q = vec4<i32>(lo | (hi << vec4<u32>(4u))) - vec4<i32>(32);
    let dl = wf16(b, 208u) * f32(sbyte(wbyte(b, 192u + 8u * n + (l >> 4u) + 2u * r)));
    return dl * vec4<f32>(q);
}
