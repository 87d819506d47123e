// Q8_0 cache rows, in the repacked layout (qs[32] @0, d @32): ggml's reference quantizer,
// d = max|x| / 127, q = round-half-away(x / d).
fn store_block(src: u32, dst: u32) {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(x[src + i]));
    }
    let d = amax / 127.0;
    let id = select(0.0, 1.0 / d, d != 0.0);
    for (var w = 0u; w < 8u; w++) {
        var word = 0u;
        for (var k = 0u; k < 4u; k++) {
            let v = x[src + 4u * w + k] * id;
            let q = i32(sign(v) * floor(abs(v) + 0.5));
            word |= (bitcast<u32>(q) & 255u) << (8u * k);
        }
        cache[dst + w] = word;
    }
    cache[dst + 8u] = pack2x16float(vec2<f32>(d, 0.0)) & 0xffffu;
}
