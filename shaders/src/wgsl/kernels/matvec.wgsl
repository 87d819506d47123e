// y = W·x for jobs of at most MV_TOK rows (decoding). One workgroup per (weight row, job):
// invocations stride over 4-element chunks of the row, each dequantized once and used for
// every token of the job, then the partial sums are reduced.

const MV_TOK: u32 = 4u;

fn kernel(lid: u32, wid: vec3<u32>) {
    let row = group_index(wid);
    let jb = JOB_WORDS * wid.z;
    let n_tok = min(host[jb + 1u], MV_TOK);
    if (row >= p.rows || n_tok == 0u) {
        return;
    }
    let w_row = host[jb] + row * p.row_words;
    var xo: array<u32, MV_TOK>;
    for (var t = 0u; t < MV_TOK; t++) {
        xo[t] = job_row(host[jb + 2u], min(t, n_tok - 1u)) * p.x_stride + host[jb + 4u];
    }
    var acc = vec4<f32>(0.0);
    let n_chunks = p.cols / 4u;
    for (var c = lid; c < n_chunks; c += WG) {
        let w = dequant4(w_row + (c / CPB) * BLOCK_WORDS, (c % CPB) * 4u);
        for (var t = 0u; t < MV_TOK; t++) {
            let e = xo[t] + 4u * c;
            acc[t] += dot(w, vec4<f32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]));
        }
    }
    for (var t = 0u; t < MV_TOK; t++) {
        let total = wg_sum(acc[t], lid);
        if (lid == 0u && t < n_tok) {
            y[job_row(host[jb + 3u], t) * p.y_stride + host[jb + 5u] + row] = total;
        }
    }
}
