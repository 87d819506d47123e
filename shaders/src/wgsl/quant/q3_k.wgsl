// Q3_K (110 bytes, padded to 112): hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
// Layout of values as Q2_K; the high bit of element l of step (half, s) is bit 4·half + s of
// hmask[l], and a clear bit subtracts 4. Scales are 16 signed 6-bit values.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let half = j >> 7u;
    let k = j & 127u;
    let s = k >> 5u;
    let group = (k >> 4u) & 1u;
    let l = 16u * group + (k & 15u);
    let is = 8u * half + 2u * s + group;
    let low_byte = wbyte(b, 96u + (is & 7u));
    let low4 = select(low_byte >> 4u, low_byte & 15u, is < 8u);
    let hi2 = (wbyte(b, 104u + (is & 3u)) >> (2u * (is >> 2u))) & 3u;
    let dl = wf16(b, 108u) * f32(i32(low4 | (hi2 << 4u)) - 32);
    let low = (bytes4(wload(b + 8u + 8u * half + (l >> 2u))) >> vec4<u32>(2u * s)) & vec4<u32>(3u);
    let hbit = (bytes4(wload(b + (l >> 2u))) >> vec4<u32>(4u * half + s)) & vec4<u32>(1u);
    let v = vec4<i32>(low) - select(vec4<i32>(4), vec4<i32>(0), hbit == vec4<u32>(1u));
    return dl * vec4<f32>(v);
}
