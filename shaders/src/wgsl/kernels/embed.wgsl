// y[host[2i+1]] = the dequantized table row starting at word host[2i] of the bound parts.
// One invocation per 4-element chunk; wid.y is i.
fn kernel(lid: u32, wid: vec3<u32>) {
    let c = wid.x * WG + lid;
    if (c >= p.cols / 4u) {
        return;
    }
    let w_row = host[2u * wid.y];
    let v = dequant4(w_row + (c / CPB) * BLOCK_WORDS, (c % CPB) * 4u);
    let o = host[2u * wid.y + 1u] * p.cols + 4u * c;
    y[o] = v.x;
    y[o + 1u] = v.y;
    y[o + 2u] = v.z;
    y[o + 3u] = v.w;
}
