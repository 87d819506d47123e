// F16 activations: each value rounded to f16.
const ACT_QK: u32 = 1u;

fn round_block(at: u32) {
    y[at] = unpack2x16float(pack2x16float(vec2<f32>(y[at], 0.0))).x;
}
