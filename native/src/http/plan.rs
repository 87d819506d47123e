//! Turning a batch of wanted byte ranges into as few HTTP requests as sensible.
//!
//! Ranges asked for together (an expert's three slabs, a layer's tensors) are sorted and
//! merged when they overlap or are closer than `max_gap` bytes, as long as the merged request
//! stays under `max_span`; a single range longer than `max_span` is cut into pieces so that
//! several connections fetch it in parallel. Each wanted range is then copied out of the
//! fetched pieces, so the caller gets exactly what it asked for, in its order.

/// One HTTP request to make: `start..end` of the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub start: u64,
    pub end: u64,
}

/// Plans requests covering `ranges` (`(offset, len)` pairs). Zero-length ranges need none.
pub fn plan(ranges: &[(u64, usize)], max_gap: u64, max_span: u64) -> Vec<Fetch> {
    let max_span = max_span.max(1);
    let mut wanted: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|&&(_, len)| len > 0)
        .map(|&(off, len)| (off, off.saturating_add(len as u64)))
        .collect();
    wanted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in wanted {
        if let Some(last) = merged.last_mut() {
            let joins = start <= last.1.saturating_add(max_gap);
            if joins && end.max(last.1) - last.0 <= max_span {
                last.1 = last.1.max(end);
                continue;
            }
            if start < last.1 {
                // Overlaps but merging would exceed the span: fetch only the new tail.
                if end <= last.1 {
                    continue;
                }
                let tail_start = last.1;
                merged.push((tail_start, end));
                continue;
            }
        }
        merged.push((start, end));
    }
    let mut fetches = Vec::with_capacity(merged.len());
    for (start, end) in merged {
        let mut at = start;
        while at < end {
            let piece_end = end.min(at + max_span);
            fetches.push(Fetch {
                start: at,
                end: piece_end,
            });
            at = piece_end;
        }
    }
    fetches
}

/// Copies `offset..offset+len` out of fetched pieces (sorted, non-overlapping, covering it).
pub fn assemble(fetches: &[Fetch], bodies: &[Vec<u8>], offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let end = offset + len as u64;
    let first = fetches.partition_point(|f| f.end <= offset);
    for (f, body) in fetches[first..].iter().zip(&bodies[first..]) {
        let at = offset + out.len() as u64;
        if at >= end {
            break;
        }
        debug_assert!(f.start <= at, "plan left a hole");
        let from = (at - f.start) as usize;
        let to = (end.min(f.end) - f.start) as usize;
        out.extend_from_slice(&body[from..to]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ranges: &[(u64, usize)], gap: u64, span: u64) -> Vec<(u64, u64)> {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let fetches = plan(ranges, gap, span);
        let bodies: Vec<Vec<u8>> = fetches
            .iter()
            .map(|f| data[f.start as usize..f.end as usize].to_vec())
            .collect();
        for w in fetches.windows(2) {
            assert!(w[0].end <= w[1].start, "pieces overlap: {fetches:?}");
        }
        for &(off, len) in ranges {
            let got = assemble(&fetches, &bodies, off, len);
            assert_eq!(got, &data[off as usize..off as usize + len]);
        }
        fetches.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn merges_adjacent_and_overlapping() {
        assert_eq!(
            run(&[(100, 10), (0, 100), (105, 20)], 0, 1 << 20),
            vec![(0, 125)]
        );
        assert_eq!(
            run(&[(0, 10), (20, 10)], 0, 1 << 20),
            vec![(0, 10), (20, 30)]
        );
        assert_eq!(run(&[(0, 10), (20, 10)], 10, 1 << 20), vec![(0, 30)]);
        assert_eq!(run(&[(5, 0), (7, 3)], 0, 100), vec![(7, 10)]);
    }

    #[test]
    fn splits_long_ranges_and_respects_span() {
        assert_eq!(
            run(&[(0, 2500)], 0, 1000),
            vec![(0, 1000), (1000, 2000), (2000, 2500)]
        );
        assert_eq!(
            run(&[(0, 800), (500, 600)], 0, 1000),
            vec![(0, 800), (800, 1100)]
        );
        assert_eq!(run(&[(0, 800), (100, 100)], 0, 1000), vec![(0, 800)]);
    }
}
