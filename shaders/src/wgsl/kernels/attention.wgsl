// Causal attention over the KV cache, one workgroup per (head wid.x, query row wid.y).
// Positions are visited in chunks of WG: each invocation scores one position (q·k over the
// head, K read through k_dequant4), the chunk is folded into a running softmax (max M, sum L),
// and invocations owning 4-column slices of the output accumulate p·v (V read through
// v_dequant4). For MLA's latent cache V is the first DV values of each K row: the same
// buffer is bound as both and v_row_words = k_row_words.

var<workgroup> q_row: array<vec4<f32>, DK4>;
var<workgroup> acc: array<vec4<f32>, DV4>;
var<workgroup> probs: array<f32, WG>;

// Rounds a query value to the cache's dot-product precision, as the CPU backend does.
fn round_query(v: vec4<f32>) -> vec4<f32> {
    if (p.round_q == 1u) {
        return vec4<f32>(round_f16(v.x), round_f16(v.y), round_f16(v.z), round_f16(v.w));
    }
    if (p.round_q == 2u) {
        let b = bitcast<vec4<u32>>(v);
        let r = (b + vec4<u32>(0x7fffu) + ((b >> vec4<u32>(16u)) & vec4<u32>(1u))) & vec4<u32>(0xffff0000u);
        return bitcast<vec4<f32>>(r);
    }
    return v;
}

fn kernel(lid: u32, wid: vec3<u32>) {
    let h = wid.x;
    let t = wid.y;
    let kvh = h / p.group;
    let q_at = t * p.q_stride + h * 4u * DK4;
    for (var c = lid; c < DK4; c += WG) {
        let e = q_at + 4u * c;
        q_row[c] = round_query(vec4<f32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]));
    }
    for (var c = lid; c < DV4; c += WG) {
        acc[c] = vec4<f32>(0.0);
    }
    workgroupBarrier();
    let k_first = kvh * 4u * DK4; // first element of this head in a K row
    let v_first = kvh * 4u * DV4;
    let visible = p.start + t + 1u;
    var run_max = -3.0e38;
    var run_sum = 0.0;
    for (var c0 = 0u; c0 < visible; c0 += WG) {
        let s = c0 + lid;
        var score = -3.0e38;
        if (s < visible) {
            let row = s * p.k_row_words;
            var dot_qk = 0.0;
            for (var c = 0u; c < DK4; c++) {
                let e = k_first + 4u * c;
                dot_qk += dot(q_row[c], k_dequant4(row + (e / k_QK) * k_BLOCK_WORDS, e % k_QK));
            }
            score = dot_qk * p.scale;
        }
        let new_max = max(run_max, wg_max(score, lid));
        var pr = 0.0;
        if (s < visible) {
            pr = exp(score - new_max);
        }
        probs[lid] = pr;
        let alpha = exp(run_max - new_max);
        run_sum = run_sum * alpha + wg_sum(pr, lid);
        run_max = new_max;
        let n = min(WG, visible - c0);
        for (var c = lid; c < DV4; c += WG) {
            let e = v_first + 4u * c;
            let blk = (e / v_QK) * v_BLOCK_WORDS;
            let j = e % v_QK;
            var a = acc[c] * alpha;
            for (var i = 0u; i < n; i++) {
                a += probs[i] * v_dequant4((c0 + i) * p.v_row_words + blk, j);
            }
            acc[c] = a;
        }
        workgroupBarrier();
    }
    let inv = 1.0 / run_sum;
    let y_at = t * p.y_stride + h * 4u * DV4;
    for (var c = lid; c < DV4; c += WG) {
        let v = acc[c] * inv;
        let e = y_at + 4u * c;
        y[e] = v.x;
        y[e + 1u] = v.y;
        y[e + 2u] = v.z;
        y[e + 3u] = v.w;
    }
}
