// F16 cache rows: 4 values, 2 words.
fn store_block(src: u32, dst: u32) {
    cache[dst] = f16_rne_bits(x[src]) | (f16_rne_bits(x[src + 1u]) << 16u);
    cache[dst + 1u] = f16_rne_bits(x[src + 2u]) | (f16_rne_bits(x[src + 3u]) << 16u);
}
