// Q5_1 cache rows, repacked (qh @0, qs[16] @4, d @20, m @22): d = (max − min) / 31,
// q = trunc((x − min) / d + 0.5).
fn store_block(src: u32, dst: u32) {
    let mm = min_max32(src);
    let d = div_rn(mm.y - mm.x, 31.0);
    let id = select(0.0, div_rn(1.0, d), d != 0.0);
    var codes: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) {
        codes[j] = min(31u, u32(max((x[src + j] - mm.x) * id + 0.5, 0.0)));
    }
    cache[dst] = pack_codes(&codes, dst + 1u);
    cache[dst + 5u] = f16_rne_bits(d) | (f16_rne_bits(mm.x) << 16u);
}
