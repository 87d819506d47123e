// Q8_K activations (ggml's reference quantizer): per 256 values, with max the first value of
// largest magnitude, iscale = −127 / max, q = min(127, round-half-even(iscale·x)),
// d = 1 / iscale (f32); the value becomes d·q.
const ACT_QK: u32 = 256u;

fn round_block(at: u32) {
    var amax = 0.0;
    var m = 0.0;
    for (var i = 0u; i < 256u; i++) {
        let v = y[at + i];
        if (abs(v) > amax) {
            amax = abs(v);
            m = v;
        }
    }
    if (amax == 0.0) {
        for (var i = 0u; i < 256u; i++) {
            y[at + i] = 0.0;
        }
        return;
    }
    let iscale = -127.0 / m;
    let d = 1.0 / iscale;
    for (var i = 0u; i < 256u; i++) {
        y[at + i] = d * min(127.0, round(iscale * y[at + i]));
    }
}
