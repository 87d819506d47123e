// Workgroup reductions with subgroup operations: one partial per subgroup, then a short serial
// sum in a fixed order. Every invocation must call these; all get the result.

var<workgroup> red_buf: array<f32, WG>;
var<private> sg_lane: u32;
var<private> sg_id: u32;
var<private> sg_count: u32;

fn wg_sum(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    if (sg_lane == 0u) {
        red_buf[sg_id] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < sg_count; i++) {
        total += red_buf[i];
    }
    workgroupBarrier();
    return total;
}

fn wg_max(v: f32, lid: u32) -> f32 {
    let s = subgroupMax(v);
    if (sg_lane == 0u) {
        red_buf[sg_id] = s;
    }
    workgroupBarrier();
    var m = red_buf[0];
    for (var i = 1u; i < sg_count; i++) {
        m = max(m, red_buf[i]);
    }
    workgroupBarrier();
    return m;
}

// Sum over the ROW_THREADS consecutive invocations that share lid / ROW_THREADS: a butterfly
// inside the subgroup (subgroups are at least ROW_THREADS wide; see `Gpu::open`).
fn row_sum(v: f32, lid: u32) -> f32 {
    var s = v;
    for (var m = ROW_THREADS / 2u; m > 0u; m >>= 1u) {
        s += subgroupShuffleXor(s, m);
    }
    return s;
}
