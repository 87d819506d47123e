// y = x / sqrt(mean(x²) + eps) ⊙ w over one segment of one row per workgroup
// (x: group g of row wid.y). Columns outside the segments are copied beforehand.
fn kernel(lid: u32, wid: vec3<u32>) {
    let row_at = wid.y * p.cols + wid.x * p.seg_stride + p.seg_offset;
    var sum = 0.0;
    for (var i = lid; i < p.seg_len; i += WG) {
        let v = x[row_at + i];
        sum += v * v;
    }
    let mean = wg_sum(sum, lid) / f32(p.seg_len);
    let scale = 1.0 / sqrt(mean + p.eps);
    for (var i = lid; i < p.seg_len; i += WG) {
        y[row_at + i] = (x[row_at + i] * scale) * w[i];
    }
}
