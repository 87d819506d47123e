// IQ4_NL cache rows, repacked (qs[16] @0, d @16), as ggml's reference quantizer: codes of the
// nearest codebook values for x / (max / −127), then the least-squares scale with weights x².

fn kv_iq4nl(i: u32) -> f32 {
    return f32(sbyte(grid_byte(GRID_IQ4NL, i)));
}

// The codebook index nearest to v (ties to the upper one), by ggml's bisection.
fn best_index_iq4nl(v: f32) -> u32 {
    if (v <= kv_iq4nl(0u)) {
        return 0u;
    }
    if (v >= kv_iq4nl(15u)) {
        return 15u;
    }
    var lo = 0u;
    var hi = 15u;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (v < kv_iq4nl(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return select(hi, hi - 1u, v - kv_iq4nl(hi - 1u) < kv_iq4nl(hi) - v);
}

fn store_block(src: u32, dst: u32) {
    var amax = 0.0;
    var m = 0.0;
    for (var i = 0u; i < 32u; i++) {
        let v = x[src + i];
        if (abs(v) > amax) {
            amax = abs(v);
            m = v;
        }
    }
    var codes: array<u32, 32>;
    var d = 0.0;
    if (amax >= 1e-15) {
        let id = 1.0 / (m / kv_iq4nl(0u));
        var sumqx = 0.0;
        var sumq2 = 0.0;
        for (var j = 0u; j < 32u; j++) {
            let v = x[src + j];
            let q = best_index_iq4nl(id * v);
            codes[j] = q;
            let qv = kv_iq4nl(q);
            let w = v * v;
            sumqx += w * qv * v;
            sumq2 += w * qv * qv;
        }
        d = select(0.0, sumqx / sumq2, sumq2 > 0.0);
    }
    pack_codes(&codes, dst);
    cache[dst + 4u] = f16_rne_bits(d);
}
