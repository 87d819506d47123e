// Q8_1 activations: Q8_0's codes and f16 scale, plus the correction ggml's Q4_1/Q5_1 dot
// products imply: they take a block's min term from s = f16(d·Σq) (d before rounding to f16),
// not from Σ of the rounded values (f16(d)·Σq). The difference is written at y[corr_base + at]
// so the product kernels can add min·difference per block.
const ACT_QK: u32 = 32u;

fn round_block(at: u32) {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(y[at + i]));
    }
    let d32 = div_rn(amax, 127.0);
    let d = round_f16(d32);
    let id = select(0.0, div_rn(127.0, amax), amax != 0.0);
    var sum = 0.0;
    for (var i = 0u; i < 32u; i++) {
        let q = clamp(round(y[at + i] * id), -128.0, 127.0);
        sum += q;
        y[at + i] = d * q;
    }
    let s = round_f16(d32 * sum);
    y[p.corr_base + at] = s - d * sum;
}
