// Scale and min (6 bits each) of sub-block `s` < 8 from the 12 packed bytes at offset 4 of a
// Q4_K / Q5_K block.
fn k_scale_min(b: u32, s: u32) -> vec2<u32> {
    if (s < 4u) {
        return vec2<u32>(wbyte(b, 4u + s) & 63u, wbyte(b, 8u + s) & 63u);
    }
    let packed = wbyte(b, 8u + s);
    return vec2<u32>(
        (packed & 15u) | ((wbyte(b, s) >> 6u) << 4u),
        (packed >> 4u) | ((wbyte(b, 4u + s) >> 6u) << 4u),
    );
}
