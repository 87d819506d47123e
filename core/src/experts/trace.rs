//! Routing traces: which experts each layer asked for, to replay against eviction policies.
//!
//! [`TracingStore`] wraps any store and records every request (and, when asked, every
//! prediction the model makes for the next layer). [`simulate`] replays the requests through
//! a [`Tier`] exactly as [`super::StreamingExperts`] drives its backend tier, so policy
//! comparisons measure the store's real behaviour without doing any I/O.

use super::policy::{key, PolicyKind, Tier};
use super::{ExpertHandles, ExpertStore, StoreStats};
use crate::backend::Backend;
use crate::source::LocalBoxFuture;
use crate::{Error, Result};
use std::cell::RefCell;
use std::rc::Rc;

/// One event of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// The layer asked for these experts (one forward call; sorted, unique).
    Use { layer: u32, experts: Vec<u32> },
    /// The model predicted these experts for the layer (most likely first).
    Predict { layer: u32, experts: Vec<u32> },
}

/// The requests of a run, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingTrace {
    pub events: Vec<TraceEvent>,
}

impl RoutingTrace {
    /// Text form, one event a line: `u LAYER E E …` or `p LAYER E E …`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for ev in &self.events {
            let (tag, layer, experts) = match ev {
                TraceEvent::Use { layer, experts } => ('u', layer, experts),
                TraceEvent::Predict { layer, experts } => ('p', layer, experts),
            };
            s.push(tag);
            s.push_str(&format!(" {layer}"));
            for e in experts {
                s.push_str(&format!(" {e}"));
            }
            s.push('\n');
        }
        s
    }

    /// Parses [`RoutingTrace::to_text`]; errors name the line.
    pub fn parse(name: &str, text: &str) -> Result<RoutingTrace> {
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |what: &str| Error::format(name, i as u64 + 1, "trace line", what);
            let mut words = line.split_ascii_whitespace();
            let Some(tag) = words.next() else { continue };
            let nums: Vec<u32> = words
                .map(|w| {
                    w.parse::<u32>()
                        .map_err(|_| bad(&format!("{w:?} is not a number")))
                })
                .collect::<Result<_>>()?;
            let (&layer, experts) = nums.split_first().ok_or_else(|| bad("no layer"))?;
            let experts = experts.to_vec();
            events.push(match tag {
                "u" => TraceEvent::Use { layer, experts },
                "p" => TraceEvent::Predict { layer, experts },
                other => return Err(bad(&format!("unknown event {other:?}"))),
            });
        }
        Ok(RoutingTrace { events })
    }

    /// The `Use` events.
    pub fn uses(&self) -> impl Iterator<Item = (usize, &[u32])> {
        self.events.iter().filter_map(|ev| match ev {
            TraceEvent::Use { layer, experts } => Some((*layer as usize, experts.as_slice())),
            TraceEvent::Predict { .. } => None,
        })
    }

    /// Share of predicted experts that the predicted layer's next request used.
    pub fn prediction_accuracy(&self) -> f64 {
        let (mut predicted, mut correct) = (0u64, 0u64);
        let mut pending: Vec<(u32, &[u32])> = Vec::new();
        for ev in &self.events {
            match ev {
                TraceEvent::Predict { layer, experts } => pending.push((*layer, experts)),
                TraceEvent::Use { layer, experts } => {
                    pending.retain(|(l, pred)| {
                        if l != layer {
                            return true;
                        }
                        predicted += pred.len() as u64;
                        correct += pred.iter().filter(|e| experts.contains(e)).count() as u64;
                        false
                    });
                }
            }
        }
        if predicted == 0 {
            0.0
        } else {
            correct as f64 / predicted as f64
        }
    }
}

/// Hit counts of a replayed trace.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SimResult {
    pub requests: u64,
    pub hits: u64,
    /// Bytes the misses would read.
    pub bytes_read: u64,
}

impl SimResult {
    pub fn hit_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.hits as f64 / self.requests as f64
        }
    }
}

/// Replays the requests of `trace` through one cache tier of `budget` bytes with `policy`;
/// `expert_bytes(layer)` is the size of one expert of that layer.
pub fn simulate(
    trace: &RoutingTrace,
    expert_bytes: &dyn Fn(usize) -> u64,
    budget: u64,
    policy: PolicyKind,
) -> SimResult {
    let mut tier: Tier<()> = Tier::new(budget, policy);
    let mut r = SimResult::default();
    let mut now = 0u64;
    let mut missed = Vec::new();
    for (layer, experts) in trace.uses() {
        // As the store does: look every expert of the call up, then insert the misses.
        missed.clear();
        for &e in experts {
            now += 1;
            r.requests += 1;
            let k = key(layer, e);
            if tier.lookup(k, now).is_some() {
                r.hits += 1;
            } else {
                missed.push(k);
            }
        }
        let size = expert_bytes(layer);
        for &k in &missed {
            r.bytes_read += size;
            tier.insert(k, (), size);
        }
    }
    r
}

/// Shared access to the trace a [`TracingStore`] records.
pub type TraceHandle = Rc<RefCell<RoutingTrace>>;

/// A store that records every request before passing it on.
pub struct TracingStore<S> {
    inner: S,
    record_predictions: bool,
    trace: TraceHandle,
}

impl<S> TracingStore<S> {
    /// Wraps `inner`. With `record_predictions`, the store asks the model for next-layer
    /// predictions (whether or not `inner` wants them) and records them too.
    pub fn new(inner: S, record_predictions: bool) -> (Self, TraceHandle) {
        let trace = TraceHandle::default();
        (
            Self {
                inner,
                record_predictions,
                trace: Rc::clone(&trace),
            },
            trace,
        )
    }
}

impl<B: Backend, S: ExpertStore<B>> ExpertStore<B> for TracingStore<S> {
    fn experts<'a>(
        &'a self,
        backend: &'a B,
        layer: usize,
        ids: &'a [u32],
    ) -> LocalBoxFuture<'a, Result<ExpertHandles<B::Weight>>> {
        self.trace.borrow_mut().events.push(TraceEvent::Use {
            layer: layer as u32,
            experts: ids.to_vec(),
        });
        self.inner.experts(backend, layer, ids)
    }

    fn wants_prefetch(&self) -> bool {
        self.record_predictions || self.inner.wants_prefetch()
    }

    fn prefetch(&self, backend: &B, layer: usize, ids: &[u32]) {
        if self.record_predictions {
            self.trace.borrow_mut().events.push(TraceEvent::Predict {
                layer: layer as u32,
                experts: ids.to_vec(),
            });
        }
        if self.inner.wants_prefetch() {
            self.inner.prefetch(backend, layer, ids);
        }
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_accuracy() {
        let t = RoutingTrace {
            events: vec![
                TraceEvent::Predict {
                    layer: 1,
                    experts: vec![3, 4],
                },
                TraceEvent::Use {
                    layer: 1,
                    experts: vec![3, 5],
                },
                TraceEvent::Use {
                    layer: 2,
                    experts: vec![],
                },
            ],
        };
        let back = RoutingTrace::parse("t", &t.to_text()).unwrap();
        assert_eq!(back, t);
        assert!((t.prediction_accuracy() - 0.5).abs() < 1e-12);
        let err = RoutingTrace::parse("t.txt", "u 1 2\nx 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.txt") && err.contains("unknown event"),
            "{err}"
        );
    }

    #[test]
    fn simulation_counts_hits_and_bytes() {
        let t = RoutingTrace::parse("t", "u 0 1 2\nu 0 1 3\nu 1 1\n").unwrap();
        let r = simulate(&t, &|l| 10 + l as u64, 100, PolicyKind::Lru);
        assert_eq!((r.requests, r.hits, r.bytes_read), (5, 1, 10 * 3 + 11));
        let none = simulate(&t, &|_| 10, 0, PolicyKind::Lru);
        assert_eq!(none.hits, 0);
    }
}
