//! Shape rules of the [`Backend`](crate::backend::Backend) ops that every backend enforces the
//! same way. Each check returns the message of the violation; a backend prefixes it with its
//! own name and the op (`cpu rope: …`, `gpu rope: …`), so errors read alike on every backend.

use crate::backend::{RopeParams, Segments};

/// Rows × columns of a tensor.
pub type Dims = (usize, usize);

/// `seg` fits rows of `cols` columns.
pub fn segments_fit(seg: Segments, cols: usize) -> Result<(), String> {
    if seg.min_cols() > cols {
        return Err(format!("segments {seg:?} do not fit {cols} columns"));
    }
    Ok(())
}

/// `rms_norm(x, w, seg) → out`: a weight of `seg.len` values, `out` shaped like `x`.
pub fn rms_norm(x: Dims, seg: Segments, w_len: usize, out: Dims) -> Result<(), String> {
    segments_fit(seg, x.1)?;
    if w_len != seg.len || out != x {
        return Err(format!("weight of {w_len} for segment {}", seg.len));
    }
    Ok(())
}

/// `rope(x, seg, positions)`: one position per row, segments of `n_rot` (even) values.
pub fn rope(x: Dims, seg: Segments, n_positions: usize, p: &RopeParams) -> Result<(), String> {
    segments_fit(seg, x.1)?;
    if n_positions != x.0 || seg.len != p.n_rot || !p.n_rot.is_multiple_of(2) {
        return Err(format!(
            "{n_positions} positions for {} rows, segment {}",
            x.0, seg.len
        ));
    }
    Ok(())
}

/// `copy_segments(src, ss) → (dst, ds)`: same rows, as many segments of the same length.
pub fn copy_segments(src: Dims, ss: Segments, dst: Dims, ds: Segments) -> Result<(), String> {
    segments_fit(ss, src.1)?;
    segments_fit(ds, dst.1)?;
    if src.0 != dst.0 || ss.groups != ds.groups || ss.len != ds.len {
        return Err(format!("{ss:?} → {ds:?}"));
    }
    Ok(())
}

/// A stack of `mats` weight matrices of `rows × cols` named `name`.
pub struct WeightShape<'a> {
    pub name: &'a str,
    pub mats: usize,
    pub rows: usize,
    pub cols: usize,
}

/// `matmul_groups(w, x, xs) → (out, os)`: segment `g` of each row of `x` times matrix `g`.
pub fn matmul_groups(
    w: WeightShape<'_>,
    x: Dims,
    xs: Segments,
    out: Dims,
    os: Segments,
) -> Result<(), String> {
    if xs.groups != w.mats
        || os.groups != w.mats
        || xs.len != w.cols
        || os.len != w.rows
        || xs.min_cols() > x.1
        || os.min_cols() > out.1
        || out.0 != x.0
    {
        return Err(format!(
            "{} [{}×{}×{}] with {xs:?} → {os:?}",
            w.name, w.mats, w.rows, w.cols
        ));
    }
    Ok(())
}
