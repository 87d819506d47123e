// F16 cache rows: 4 values, 2 words.
fn store_block(src: u32, dst: u32) {
    cache[dst] = pack2x16float(vec2<f32>(x[src], x[src + 1u]));
    cache[dst + 1u] = pack2x16float(vec2<f32>(x[src + 2u], x[src + 3u]));
}
