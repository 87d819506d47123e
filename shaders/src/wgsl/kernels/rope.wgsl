// Rotary embedding in place. The (cos, sin) of each pair at each row's position come from the
// host (computed exactly as the CPU backend does): host[2·(t·half + i) ..]. One invocation per
// (pair, segment); wid.y is the row.
fn kernel(lid: u32, wid: vec3<u32>) {
    let hr = p.n_rot / 2u;
    let k = wid.x * WG + lid;
    if (k >= hr * p.seg_groups) {
        return;
    }
    let t = wid.y;
    let g = k / hr;
    let i = k % hr;
    let cs = 2u * (t * hr + i);
    let c = bitcast<f32>(host[cs]);
    let s = bitcast<f32>(host[cs + 1u]);
    let base = t * p.cols + g * p.seg_stride + p.seg_offset;
    var a: u32;
    var b: u32;
    if (p.neox != 0u) {
        a = base + i;
        b = base + i + hr;
    } else {
        a = base + 2u * i;
        b = a + 1u;
    }
    let x0 = y[a];
    let x1 = y[b];
    y[a] = x0 * c - x1 * s;
    y[b] = x0 * s + x1 * c;
}
