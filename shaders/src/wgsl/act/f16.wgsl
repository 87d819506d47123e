// F16 activations: each value rounded to f16.
const ACT_QK: u32 = 1u;

fn round_block(at: u32) {
    y[at] = round_f16(y[at]);
}
