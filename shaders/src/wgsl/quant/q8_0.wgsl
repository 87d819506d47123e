// Q8_0, repacked: qs[32] (i8) @0, d @32; y = q·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    let d = wf16(b, 32u);
    return vec4<f32>(sbytes4(wload(b + (j >> 2u)))) * d;
}
