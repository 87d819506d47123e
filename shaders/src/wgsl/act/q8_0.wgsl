// Q8_0 / Q8_1 activations (ggml-cpu's x86 quantizer): per 32 values d = f16(max|x| / 127),
// q = round-half-even(x · 127 / max|x|); the value becomes d·q.
const ACT_QK: u32 = 32u;

fn round_block(at: u32) {
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) {
        amax = max(amax, abs(y[at + i]));
    }
    let d = round_f16(div_rn(amax, 127.0));
    let id = select(0.0, div_rn(127.0, amax), amax != 0.0);
    for (var i = 0u; i < 32u; i++) {
        y[at + i] = d * clamp(round(y[at + i] * id), -128.0, 127.0);
    }
}
