// Q5_0 cache rows, repacked (qh @0, qs[16] @4, d @20): d = max / −16,
// q = min(31, trunc(x / d + 16.5)).
fn store_block(src: u32, dst: u32) {
    let d = div_rn(signed_max32(src), -16.0);
    let id = select(0.0, div_rn(1.0, d), d != 0.0);
    var codes: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) {
        codes[j] = min(31u, u32(max(x[src + j] * id + 16.5, 0.0)));
    }
    cache[dst] = pack_codes(&codes, dst + 1u);
    cache[dst + 5u] = f16_rne_bits(d);
}
