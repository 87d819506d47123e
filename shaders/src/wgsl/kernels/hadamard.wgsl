// In place on each `len`-value chunk of y (`chunks` of them): scale by 1/sqrt(len), then the
// Walsh-Hadamard butterflies, in the same order as the CPU backend so results are identical.
fn kernel(lid: u32, wid: vec3<u32>) {
    let c = group_index(wid) * WG + lid;
    if (c >= p.chunks) {
        return;
    }
    let base = c * p.len;
    for (var i = 0u; i < p.len; i++) {
        y[base + i] *= p.s;
    }
    var span = 1u;
    loop {
        if (span >= p.len) {
            break;
        }
        for (var i = 0u; i < p.len; i += 2u * span) {
            for (var j = 0u; j < span; j++) {
                let a = y[base + i + j];
                let b = y[base + i + span + j];
                y[base + i + j] = a + b;
                y[base + i + span + j] = a - b;
            }
        }
        span = span * 2u;
    }
}
