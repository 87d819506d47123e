// Q8_0 cache rows, repacked (qs[32] @0, d @32), as ggml-cpu's x86 quantizer writes them:
// d = max|x| / 127, q = round-half-even(x · 127 / max|x|).
fn store_block(src: u32, dst: u32) {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(x[src + i]));
    }
    let id = select(0.0, div_rn(127.0, amax), amax != 0.0);
    for (var w = 0u; w < 8u; w++) {
        var word = 0u;
        for (var k = 0u; k < 4u; k++) {
            let q = i32(clamp(round(x[src + 4u * w + k] * id), -128.0, 127.0));
            word |= (bitcast<u32>(q) & 255u) << (8u * k);
        }
        cache[dst + w] = word;
    }
    cache[dst + 8u] = f16_rne_bits(div_rn(amax, 127.0));
}
