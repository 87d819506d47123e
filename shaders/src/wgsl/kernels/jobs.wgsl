// Weight-product jobs. A job is one weight matrix (a view: its first word `w_base`) applied to
// `n_tok` activation rows; host[JOB_WORDS·i ..] holds job i:
//   0 w_base   first word of the matrix (relative to the first bound weight part)
//   1 n_tok    rows of x this job multiplies
//   2 x_list   host index of the list of x rows, or NO_INDEX for rows 0..n_tok
//   3 y_list   host index of the list of output rows, or NO_INDEX for rows 0..n_tok
//   4 x_col    first column of the job's input in each x row
//   5 y_col    first column of the job's output in each y row
// Plain products, per-head products (one job per head) and routed experts (one job per
// expert, gathered token rows) are all the same kernel.

const JOB_WORDS: u32 = 8u;

fn job_row(list: u32, i: u32) -> u32 {
    if (list == NO_INDEX) {
        return i;
    }
    return host[list + i];
}
