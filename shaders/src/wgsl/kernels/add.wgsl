// y += x.
fn kernel(lid: u32, wid: vec3<u32>) {
    let i = group_index(wid) * WG + lid;
    if (i >= p.n) {
        return;
    }
    y[i] += x[i];
}
