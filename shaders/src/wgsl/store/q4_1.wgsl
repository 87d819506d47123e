// Q4_1 cache rows, repacked (qs[16] @0, d @16, m @18): d = (max − min) / 15,
// q = min(15, trunc((x − min) / d + 0.5)).
fn store_block(src: u32, dst: u32) {
    let mm = min_max32(src);
    let d = div_rn(mm.y - mm.x, 15.0);
    let id = select(0.0, div_rn(1.0, d), d != 0.0);
    var codes: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) {
        codes[j] = min(15u, u32(max((x[src + j] - mm.x) * id + 0.5, 0.0)));
    }
    pack_codes(&codes, dst);
    cache[dst + 4u] = f16_rne_bits(d) | (f16_rne_bits(mm.x) << 16u);
}
