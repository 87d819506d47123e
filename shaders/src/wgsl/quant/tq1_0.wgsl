// TQ1_0 (54 bytes, padded to 56): qs[48] @0 (5 trits per byte), qh[4] @48 (4 trits per byte),
// d @52. Trit n of byte x is ((x·3^n mod 256)·3) >> 8; values are (trit − 1)·d.
fn dequant4(b: u32, j: u32) -> vec4<f32> {
    var n: u32;
    var at: u32;
    if (j < 160u) {
        n = j >> 5u;
        at = j & 31u;
    } else if (j < 240u) {
        n = (j - 160u) >> 4u;
        at = 32u + (j & 15u);
    } else {
        n = (j - 240u) >> 2u;
        at = 48u;
    }
    let pow3 = select(select(select(select(81u, 27u, n == 3u), 9u, n == 2u), 3u, n == 1u), 1u, n == 0u);
    let q = (bytes4(wload(b + (at >> 2u))) * pow3) & vec4<u32>(255u);
    let t = (q * 3u) >> vec4<u32>(8u);
    return vec4<f32>(vec4<i32>(t) - vec4<i32>(1)) * wf16(b, 52u);
}
