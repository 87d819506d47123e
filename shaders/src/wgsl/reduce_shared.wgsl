// Workgroup reductions through workgroup memory (no subgroup support). WG is a power of two.
// Every invocation must call these (they contain barriers); all get the result.

var<workgroup> red_buf: array<f32, WG>;

fn wg_sum(v: f32, lid: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_buf[lid] += red_buf[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, lid: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_buf[lid] = max(red_buf[lid], red_buf[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}

// Sum over the ROW_THREADS consecutive invocations that share lid / ROW_THREADS.
fn row_sum(v: f32, lid: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    let k = lid % ROW_THREADS;
    for (var s = ROW_THREADS / 2u; s > 0u; s >>= 1u) {
        if (k < s) {
            red_buf[lid] += red_buf[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_buf[lid - k];
    workgroupBarrier();
    return r;
}
