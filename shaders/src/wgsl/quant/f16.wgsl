// F16 weights: a GPU block is 4 values in 2 words (element 2i in the low half of word i).
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(wload(b)), unpack2x16float(wload(b + 1u)));
}
