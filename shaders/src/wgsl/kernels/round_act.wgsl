// Rounds activations in place as the CPU backend converts them for its dot products (the
// weight type's activation format, `round_block`), so both backends multiply the same values.
// One invocation per block of a segment; wid.y is the segment, wid.z the row.
fn kernel(lid: u32, wid: vec3<u32>) {
    let blk = wid.x * WG + lid;
    if (blk >= p.seg_len / ACT_QK) {
        return;
    }
    round_block(wid.z * p.cols + wid.y * p.seg_stride + p.seg_offset + blk * ACT_QK);
}
