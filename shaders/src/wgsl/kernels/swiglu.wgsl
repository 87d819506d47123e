// y = silu(gate) ⊙ up with silu(g) = g / (1 + e^-g).
fn kernel(lid: u32, wid: vec3<u32>) {
    let i = group_index(wid) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let g = x[i];
    y[i] = g / (1.0 + exp(-g)) * up[i];
}
