// F32 cache rows: 4 values, 4 words.
fn store_block(src: u32, dst: u32) {
    for (var i = 0u; i < 4u; i++) {
        cache[dst + i] = bitcast<u32>(x[src + i]);
    }
}
