// y = W·x for jobs of at most MV_TOK rows (decoding). A workgroup computes MV_ROWS weight rows
// of one job (wid.z); the ROW_THREADS invocations of a row stride over its 4-element chunks,
// dequantize each once for every token of the job, then sum with row_sum. Affine formats
// (HAS_MIN) add min·correction per block when the activations carry Q8_1 corrections.

const MV_TOK: u32 = 4u;
const MV_ROWS: u32 = WG / ROW_THREADS;

fn kernel(lid: u32, wid: vec3<u32>) {
    let row0 = group_index(wid) * MV_ROWS;
    let jb = JOB_WORDS * wid.z;
    let n_tok = min(host[jb + 1u], MV_TOK);
    if (row0 >= p.rows || n_tok == 0u) {
        return;
    }
    let row = row0 + lid / ROW_THREADS;
    let k = lid % ROW_THREADS;
    let w_row = host[jb] + min(row, p.rows - 1u) * p.row_words;
    var xo: array<u32, MV_TOK>;
    for (var t = 0u; t < n_tok; t++) {
        xo[t] = job_row(host[jb + 2u], t) * p.x_stride + host[jb + 4u];
    }
    var acc = vec4<f32>(0.0);
    let n_chunks = p.cols / 4u;
    let corrected = HAS_MIN && p.corr_base != NO_INDEX;
    for (var c = k; c < n_chunks; c += ROW_THREADS) {
        let wb = w_row + (c / CPB) * BLOCK_WORDS;
        let w = dequant4(wb, (c % CPB) * 4u);
        for (var t = 0u; t < n_tok; t++) {
            let e = xo[t] + 4u * c;
            acc[t] += dot(w, vec4<f32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]));
        }
        if (corrected && c % CPB == 0u) {
            let m = block_min(wb);
            for (var t = 0u; t < n_tok; t++) {
                acc[t] += m * x[p.corr_base + xo[t] + 4u * c];
            }
        }
    }
    for (var t = 0u; t < n_tok; t++) {
        let total = row_sum(acc[t], lid);
        if (k == 0u && row < p.rows) {
            y[job_row(host[jb + 3u], t) * p.y_stride + host[jb + 5u] + row] = total;
        }
    }
}
