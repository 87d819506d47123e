//! Counters an expert store reports, and the one-line summary printed at exit.

use std::fmt;

/// Counters every store reports (a resident store only counts hits).
///
/// Every expert request lands in exactly one of `hits`, `host_hits`, `prefetch_useful` and
/// `misses`, so their sum is the number of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StoreStats {
    /// Requests served by the backend tier (or by a resident store).
    pub hits: u64,
    /// Requests served from raw bytes in the host tier (backend tier missed).
    pub host_hits: u64,
    /// Demand reads: requests that had to read the expert from its source.
    pub misses: u64,
    /// Bytes asked of the sources (demand reads and prefetches).
    pub bytes_read: u64,
    /// Time requests spent waiting for reads (demand or still-running prefetches).
    pub stall_ms: f64,
    /// Prefetch reads started.
    pub prefetch_issued: u64,
    /// Prefetch reads that served a request.
    pub prefetch_useful: u64,
    /// Experts predicted for an upcoming layer (cached ones included).
    pub prefetch_predicted: u64,
    /// Predicted experts the layer really used.
    pub prefetch_correct: u64,
    /// Experts dropped from the backend tier to stay within its budget.
    pub evictions: u64,
}

impl StoreStats {
    /// Expert requests served.
    pub fn requests(&self) -> u64 {
        self.hits + self.host_hits + self.prefetch_useful + self.misses
    }

    /// Share of requests served without a demand read (cache tiers and prefetches).
    pub fn hit_rate(&self) -> f64 {
        ratio(self.requests() - self.misses, self.requests())
    }

    /// Share of requests found in a cache tier (prefetches not counted).
    pub fn cache_hit_rate(&self) -> f64 {
        ratio(self.hits + self.host_hits, self.requests())
    }

    /// Share of predicted experts the layer used.
    pub fn prefetch_accuracy(&self) -> f64 {
        ratio(self.prefetch_correct, self.prefetch_predicted)
    }

    /// The counters accumulated since `earlier` (for measuring one phase, e.g. decoding).
    pub fn since(&self, earlier: &StoreStats) -> StoreStats {
        StoreStats {
            hits: self.hits - earlier.hits,
            host_hits: self.host_hits - earlier.host_hits,
            misses: self.misses - earlier.misses,
            bytes_read: self.bytes_read - earlier.bytes_read,
            stall_ms: self.stall_ms - earlier.stall_ms,
            prefetch_issued: self.prefetch_issued - earlier.prefetch_issued,
            prefetch_useful: self.prefetch_useful - earlier.prefetch_useful,
            prefetch_predicted: self.prefetch_predicted - earlier.prefetch_predicted,
            prefetch_correct: self.prefetch_correct - earlier.prefetch_correct,
            evictions: self.evictions - earlier.evictions,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl fmt::Display for StoreStats {
    /// `1234 expert requests: 81.0% served without a read (cache 70.2%, prefetch 10.8%),
    /// 640.5 MB read, 1520 ms stalled; prefetch 300 issued, 250 useful, accuracy 78.1%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.requests();
        write!(
            f,
            "{n} expert requests: {:.1}% served without a read (cache {:.1}%, prefetch {:.1}%), \
             {:.1} MB read, {:.0} ms stalled, {} evictions",
            100.0 * self.hit_rate(),
            100.0 * self.cache_hit_rate(),
            100.0 * ratio(self.prefetch_useful, n),
            self.bytes_read as f64 / 1e6,
            self.stall_ms,
            self.evictions
        )?;
        if self.prefetch_predicted > 0 || self.prefetch_issued > 0 {
            write!(
                f,
                "; prefetch {} issued, {} useful, prediction accuracy {:.1}%",
                self.prefetch_issued,
                self.prefetch_useful,
                100.0 * self.prefetch_accuracy()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_deltas() {
        let s = StoreStats {
            hits: 6,
            host_hits: 1,
            misses: 2,
            prefetch_useful: 1,
            prefetch_predicted: 4,
            prefetch_correct: 3,
            ..Default::default()
        };
        assert_eq!(s.requests(), 10);
        assert!((s.hit_rate() - 0.8).abs() < 1e-12);
        assert!((s.cache_hit_rate() - 0.7).abs() < 1e-12);
        assert!((s.prefetch_accuracy() - 0.75).abs() < 1e-12);
        let d = s.since(&StoreStats {
            hits: 5,
            ..Default::default()
        });
        assert_eq!(d.hits, 1);
        assert_eq!(StoreStats::default().hit_rate(), 0.0);
        let line = s.to_string();
        assert!(
            line.contains("80.0% served") && line.contains("accuracy 75.0%"),
            "{line}"
        );
    }
}
