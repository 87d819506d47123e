// BF16 activations: each value rounded to bf16 (nearest, ties to even; NaN kept quiet).
const ACT_QK: u32 = 1u;

fn round_block(at: u32) {
    let bits = bitcast<u32>(y[at]);
    var r: u32;
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        r = bits | 0x00400000u;
    } else {
        r = bits + 0x7fffu + ((bits >> 16u) & 1u);
    }
    y[at] = bitcast<f32>(r & 0xffff0000u);
}
