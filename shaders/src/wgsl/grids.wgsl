// Lookup tables (core's grids, uploaded once; offsets generated).

fn grid_byte(table: u32, i: u32) -> u32 {
    return (grids[table + (i >> 2u)] >> ((i & 3u) * 8u)) & 255u;
}

// ksigns_iq2xs[i]: 7 sign bits plus a parity bit.
fn ksigns(i: u32) -> u32 {
    return grid_byte(GRID_KSIGNS, i);
}

// Four entries of a signed 16-entry codebook (IQ4_NL or FP4) as floats.
fn kvalues4(table: u32, q: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(
        f32(sbyte(grid_byte(table, q.x))),
        f32(sbyte(grid_byte(table, q.y))),
        f32(sbyte(grid_byte(table, q.z))),
        f32(sbyte(grid_byte(table, q.w))),
    );
}
