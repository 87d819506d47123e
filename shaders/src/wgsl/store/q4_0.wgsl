// Q4_0 cache rows, repacked (qs[16] @0, d @16): d = max / −8 (max: the first value of largest
// magnitude), q = min(15, trunc(x / d + 8.5)).
fn store_block(src: u32, dst: u32) {
    let d = div_rn(signed_max32(src), -8.0);
    let id = select(0.0, div_rn(1.0, d), d != 0.0);
    var codes: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) {
        codes[j] = min(15u, u32(max(x[src + j] * id + 8.5, 0.0)));
    }
    pack_codes(&codes, dst);
    cache[dst + 4u] = f16_rne_bits(d);
}
