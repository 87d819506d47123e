// Helpers every kernel may use.

const NO_INDEX: u32 = 0xffffffffu;
// Workgroups along x before spilling into y (grids wider than one dispatch dimension allows).
const GRID_X: u32 = 32768u;

// The four bytes of a word, least significant first.
fn bytes4(w: u32) -> vec4<u32> {
    return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u);
}

// The four bytes of a word as signed 8-bit values.
fn sbytes4(w: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
}

// A byte (0..255) as a signed 8-bit value.
fn sbyte(v: u32) -> i32 {
    return bitcast<i32>(v << 24u) >> 24u;
}

// Negates v[i] where bit i of s is set.
fn apply_signs(v: vec4<f32>, s: u32) -> vec4<f32> {
    let bits = (vec4<u32>(s) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return select(v, -v, bits == vec4<u32>(1u));
}

// Index of a workgroup in a grid laid out GRID_X wide.
fn group_index(wid: vec3<u32>) -> u32 {
    return wid.y * GRID_X + wid.x;
}
