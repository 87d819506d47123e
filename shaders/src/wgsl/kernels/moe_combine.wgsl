// y[t] = Σ_k host_f32[t·k_used + k] · x[t·k_used + k], summed in k order.
fn kernel(lid: u32, wid: vec3<u32>) {
    let i = group_index(wid) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let t = i / p.cols;
    let c = i % p.cols;
    let first = t * p.k_used;
    var acc = x[first * p.cols + c] * bitcast<f32>(host[first]);
    for (var k = 1u; k < p.k_used; k++) {
        acc += x[(first + k) * p.cols + c] * bitcast<f32>(host[first + k]);
    }
    y[i] = acc;
}
