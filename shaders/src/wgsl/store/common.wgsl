// Helpers of the cache writers: block statistics and code packing, in ggml's order.

// The first value of largest magnitude among 32 (0 for an all-zero block).
fn signed_max32(src: u32) -> f32 {
    var amax = 0.0;
    var m = 0.0;
    for (var i = 0u; i < 32u; i++) {
        let v = x[src + i];
        if (amax < abs(v)) {
            amax = abs(v);
            m = v;
        }
    }
    return m;
}

// (min, max) of 32 values.
fn min_max32(src: u32) -> vec2<f32> {
    var lo = 3.4028234e38;
    var hi = -3.4028234e38;
    for (var i = 0u; i < 32u; i++) {
        let v = x[src + i];
        lo = min(lo, v);
        hi = max(hi, v);
    }
    return vec2<f32>(lo, hi);
}

// Writes 32 4-bit codes as 4 words at dst: element j in the low nibble of byte j, j + 16 in
// the high nibble; returns the fifth bits of the codes as a word (bit j = bit 4 of code j).
fn pack_codes(codes: ptr<function, array<u32, 32>>, dst: u32) -> u32 {
    var fifth = 0u;
    for (var w = 0u; w < 4u; w++) {
        var word = 0u;
        for (var k = 0u; k < 4u; k++) {
            let j = 4u * w + k;
            word |= (((*codes)[j] & 15u) | (((*codes)[j + 16u] & 15u) << 4u)) << (8u * k);
        }
        cache[dst + w] = word;
    }
    for (var j = 0u; j < 32u; j++) {
        fifth |= (((*codes)[j] >> 4u) & 1u) << j;
    }
    return fifth;
}
