// Writes rows of x into cache rows first_row.. in the cache type (store_block). One
// invocation per block; wid.y is the row.
fn kernel(lid: u32, wid: vec3<u32>) {
    let blk = wid.x * WG + lid;
    if (blk >= p.cols / STORE_QK) {
        return;
    }
    let t = wid.y;
    store_block(t * p.cols + blk * STORE_QK, (p.first_row + t) * p.row_words + blk * STORE_WORDS);
}
