// Byte-level reads of the weight words (wload is generated with the weight bindings).

fn wbyte(b: u32, off: u32) -> u32 {
    return (wload(b + (off >> 2u)) >> ((off & 3u) * 8u)) & 255u;
}

fn wu16(b: u32, off: u32) -> u32 {
    return (wload(b + (off >> 2u)) >> ((off & 2u) * 8u)) & 0xffffu;
}

fn wf16(b: u32, off: u32) -> f32 {
    return unpack2x16float(wu16(b, off)).x;
}
