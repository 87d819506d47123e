// BF16 weights: a GPU block is 4 values in 2 words; BF16 is the top half of an f32.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let w0 = wload(b);
    let w1 = wload(b + 1u);
    return vec4<f32>(
        bitcast<f32>(w0 << 16u),
        bitcast<f32>(w0 & 0xffff0000u),
        bitcast<f32>(w1 << 16u),
        bitcast<f32>(w1 & 0xffff0000u),
    );
}
