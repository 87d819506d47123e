// y = W·x for jobs of many rows (prompt processing). A 16×16 workgroup computes a tile of
// 64 weight rows × 64 tokens of one job, 4×4 outputs per invocation, stepping through the
// columns 16 at a time with both operands staged in workgroup memory.

const TILE: u32 = 64u;
var<workgroup> w_tile: array<vec4<f32>, 256>; // [row][4-column chunk]
var<workgroup> x_tile: array<vec4<f32>, 256>; // [token][4-column chunk]
// Affine formats with Q8_1 corrections: block mins and corrections at block-start chunks.
var<workgroup> w_min: array<f32, 256>;
var<workgroup> x_corr: array<f32, 256>;

fn kernel(lid: u32, wid: vec3<u32>) {
    let jb = JOB_WORDS * wid.z;
    let n_tok = host[jb + 1u];
    let row0 = wid.x * TILE;
    let tok0 = wid.y * TILE;
    if (row0 >= p.rows || tok0 >= n_tok) {
        return;
    }
    // Loading role: row / token lid / 4, chunk lid % 4.
    let lr = lid >> 2u;
    let lc = lid & 3u;
    let w_ok = row0 + lr < p.rows;
    let w_row = host[jb] + min(row0 + lr, p.rows - 1u) * p.row_words;
    let x_ok = tok0 + lr < n_tok;
    let xo = job_row(host[jb + 2u], min(tok0 + lr, n_tok - 1u)) * p.x_stride + host[jb + 4u];
    // Computing role: rows 4·ty.., tokens 4·tx...
    let tx = lid & 15u;
    let ty = lid >> 4u;
    var acc: array<vec4<f32>, 4>;
    let n_chunks = p.cols / 4u;
    let corrected = HAS_MIN && p.corr_base != NO_INDEX;
    for (var c0 = 0u; c0 < n_chunks; c0 += 4u) {
        let c = c0 + lc;
        var wv = vec4<f32>(0.0);
        var xv = vec4<f32>(0.0);
        var wm = 0.0;
        var xc = 0.0;
        if (c < n_chunks && w_ok) {
            let wb = w_row + (c / CPB) * BLOCK_WORDS;
            wv = dequant4(wb, (c % CPB) * 4u);
            if (corrected && c % CPB == 0u) {
                wm = block_min(wb);
            }
        }
        if (c < n_chunks && x_ok) {
            let e = xo + 4u * c;
            xv = vec4<f32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]);
            if (corrected && c % CPB == 0u) {
                xc = x[p.corr_base + e];
            }
        }
        w_tile[lid] = wv;
        x_tile[lid] = xv;
        w_min[lid] = wm;
        x_corr[lid] = xc;
        workgroupBarrier();
        for (var k = 0u; k < 4u; k++) {
            let x0 = x_tile[(4u * tx) * 4u + k];
            let x1 = x_tile[(4u * tx + 1u) * 4u + k];
            let x2 = x_tile[(4u * tx + 2u) * 4u + k];
            let x3 = x_tile[(4u * tx + 3u) * 4u + k];
            for (var r = 0u; r < 4u; r++) {
                let w = w_tile[(4u * ty + r) * 4u + k];
                acc[r] += vec4<f32>(dot(w, x0), dot(w, x1), dot(w, x2), dot(w, x3));
            }
            if (corrected) {
                let xc = vec4<f32>(
                    x_corr[(4u * tx) * 4u + k],
                    x_corr[(4u * tx + 1u) * 4u + k],
                    x_corr[(4u * tx + 2u) * 4u + k],
                    x_corr[(4u * tx + 3u) * 4u + k],
                );
                for (var r = 0u; r < 4u; r++) {
                    acc[r] += w_min[(4u * ty + r) * 4u + k] * xc;
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + 4u * ty + r;
        for (var t = 0u; t < 4u; t++) {
            let tok = tok0 + 4u * tx + t;
            if (row < p.rows && tok < n_tok) {
                y[job_row(host[jb + 3u], tok) * p.y_stride + host[jb + 5u] + row] = acc[r][t];
            }
        }
    }
}
