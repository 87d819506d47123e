// y[t, dst segment g] = x[t, src segment g]; a source stride of 0 repeats one segment.
// wid.y is the group, wid.z the row.
fn kernel(lid: u32, wid: vec3<u32>) {
    let i = wid.x * WG + lid;
    if (i >= p.len) {
        return;
    }
    let g = wid.y;
    let t = wid.z;
    y[t * p.dst_cols + g * p.dst_stride + p.dst_offset + i] =
        x[t * p.src_cols + g * p.src_stride + p.src_offset + i];
}
