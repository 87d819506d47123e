// BF16 cache rows: 4 values, 2 words; f32 → bf16 rounds to nearest, ties to even.
fn to_bf16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return (bits >> 16u) | 64u; // quiet NaN
    }
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

fn store_block(src: u32, dst: u32) {
    cache[dst] = to_bf16(x[src]) | (to_bf16(x[src + 1u]) << 16u);
    cache[dst + 1u] = to_bf16(x[src + 2u]) | (to_bf16(x[src + 3u]) << 16u);
}
