// F32 weights: a GPU block is 4 consecutive values, one per word.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    return vec4<f32>(
        bitcast<f32>(wload(b)),
        bitcast<f32>(wload(b + 1u)),
        bitcast<f32>(wload(b + 2u)),
        bitcast<f32>(wload(b + 3u)),
    );
}
