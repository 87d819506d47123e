//! Eviction policies and the byte-budgeted cache tier they drive.
//!
//! Two policies:
//!
//! * [`PolicyKind::Lru`]: evict the expert used longest ago. The baseline.
//! * [`PolicyKind::Lrfu`] (default): evict the expert with the smallest *combined recency and
//!   frequency* (CRF, from Lee et al.'s LRFU): every access adds 1 to an expert's score and
//!   the score halves every `half_life` accesses. A short half-life behaves like LRU, an
//!   infinite one like LFU.
//!
//! Why frequency matters for experts: a decode step visits the layers in a fixed order, so the
//! access stream is a loop over all MoE layers. When the cache is smaller than one loop's
//! working set, LRU always evicts the expert of the layer that comes next — the classic
//! loop pathology, where hit rates fall towards what repeated experts alone give. Router
//! popularity is skewed and changes slowly, so counting accesses (with decay, to follow topic
//! shifts) keeps the experts that pay off. The expert universe is small (layers × experts, ~15k
//! for DeepSeek-V3), so the scores of *every* expert are remembered, resident or not: an
//! evicted expert that keeps being asked for regains its place quickly.
//!
//! Both policies keep residents ordered by a priority that does not change until the expert is
//! accessed again, so each operation is a B-tree update. For LRFU the trick is that the
//! score `crf · 2^(-(now - last)/h)` orders experts the same way at every `now` as
//! `log2(crf) + last/h` does, which is fixed between accesses.

use std::collections::{BTreeSet, HashMap};

/// An expert: `(layer << 32) | expert`.
pub type Key = u64;

/// `Key` of expert `e` of layer `l`.
pub fn key(layer: usize, expert: u32) -> Key {
    ((layer as u64) << 32) | expert as u64
}

/// Which eviction policy a tier uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// Combined recency and frequency; scores halve every `half_life` accesses
    /// (`f64::INFINITY` = plain access counts, LFU).
    Lrfu { half_life: f64 },
}

impl PolicyKind {
    /// The default: LRFU with a half-life of `4 ×` the number of experts in the model, in
    /// accesses — about `4 · n_expert / k_used` decode steps (128 for DeepSeek-V3), long
    /// enough to learn popularity and short enough to follow a change of topic. Chosen by
    /// replaying routing traces (see `trace::simulate`).
    pub fn default_for(total_experts: usize) -> PolicyKind {
        PolicyKind::Lrfu {
            half_life: 4.0 * total_experts.max(1) as f64,
        }
    }

    /// A short name for tables (`lru`, `lrfu(h=…)`, `lfu`).
    pub fn label(&self) -> String {
        match self {
            PolicyKind::Lru => "lru".into(),
            PolicyKind::Lrfu { half_life } if half_life.is_infinite() => "lfu".into(),
            PolicyKind::Lrfu { half_life } => format!("lrfu(h={half_life:.0})"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct History {
    /// Score at `last` (LRFU) — unused by LRU.
    crf: f64,
    last: u64,
}

/// Resident keys ordered by priority (lowest evicted first), with every key's history.
struct Policy {
    kind: PolicyKind,
    history: HashMap<Key, History>,
    /// `(priority bits, last access, key)` of resident keys.
    order: BTreeSet<(u64, u64, Key)>,
}

impl Policy {
    fn new(kind: PolicyKind) -> Self {
        Self {
            kind,
            history: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    /// Priority of a key with this history; larger stays longer. Always ≥ 0, so the f64 bit
    /// pattern orders like the value.
    fn priority(&self, h: &History) -> u64 {
        match self.kind {
            PolicyKind::Lru => h.last,
            PolicyKind::Lrfu { half_life } => {
                let recency = if half_life.is_finite() {
                    h.last as f64 / half_life
                } else {
                    0.0
                };
                (h.crf.max(1.0).log2() + recency).to_bits()
            }
        }
    }

    fn entry(&self, k: Key) -> (u64, u64, Key) {
        let h = self.history.get(&k).copied().unwrap_or_default();
        (self.priority(&h), h.last, k)
    }

    /// Records an access at `now`; `resident` says whether `k` is in the cache.
    fn access(&mut self, k: Key, now: u64, resident: bool) {
        if resident {
            let old = self.entry(k);
            self.order.remove(&old);
        }
        let h = self.history.entry(k).or_default();
        h.crf = match self.kind {
            PolicyKind::Lru => 1.0,
            PolicyKind::Lrfu { half_life } => {
                let decay = if half_life.is_finite() {
                    (-((now - h.last.min(now)) as f64) / half_life).exp2()
                } else {
                    1.0
                };
                1.0 + h.crf * decay
            }
        };
        h.last = now;
        if resident {
            let new = self.entry(k);
            self.order.insert(new);
        }
    }

    fn admit(&mut self, k: Key) {
        let e = self.entry(k);
        self.order.insert(e);
    }

    fn remove(&mut self, k: Key) {
        let e = self.entry(k);
        self.order.remove(&e);
    }

    /// The resident key to evict first.
    fn victim(&self) -> Option<Key> {
        self.order.first().map(|&(_, _, k)| k)
    }
}

/// A cache tier: values with a byte size, kept within a byte budget by a policy.
///
/// Values handed out stay alive while their holder keeps them (they are `Arc`s in practice),
/// so evicting an expert that a running layer still uses is safe; the budget bounds what the
/// tier itself keeps.
pub struct Tier<V> {
    budget: u64,
    used: u64,
    entries: HashMap<Key, (V, u64)>,
    policy: Policy,
}

impl<V: Clone> Tier<V> {
    pub fn new(budget: u64, kind: PolicyKind) -> Self {
        Self {
            budget,
            used: 0,
            entries: HashMap::new(),
            policy: Policy::new(kind),
        }
    }

    /// Whether the tier can hold anything at all.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `k` is held (not an access).
    pub fn contains(&self, k: Key) -> bool {
        self.entries.contains_key(&k)
    }

    /// Records an access to `k` at `now` and returns its value if held. Misses are recorded
    /// too: frequency counts every request.
    pub fn lookup(&mut self, k: Key, now: u64) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let held = self.entries.get(&k).map(|(v, _)| v.clone());
        self.policy.access(k, now, held.is_some());
        held
    }

    /// Adds `k` (after a [`Tier::lookup`] missed) and evicts until within budget; returns how
    /// many entries were evicted. `k` itself may be the one evicted when everything held
    /// ranks higher — the policy then declines to cache it.
    pub fn insert(&mut self, k: Key, v: V, bytes: u64) -> u64 {
        if !self.enabled() {
            return 0;
        }
        if let Some((_, old)) = self.entries.insert(k, (v, bytes)) {
            self.used -= old;
            self.policy.remove(k);
        }
        self.used += bytes;
        self.policy.admit(k);
        let mut evicted = 0;
        while self.used > self.budget {
            let Some(victim) = self.policy.victim() else {
                break;
            };
            self.policy.remove(victim);
            if let Some((_, b)) = self.entries.remove(&victim) {
                self.used -= b;
            }
            evicted += 1;
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: PolicyKind, budget: u64, accesses: &[u32]) -> (u64, Tier<()>) {
        let mut t = Tier::new(budget, kind);
        let mut hits = 0;
        for (now, &e) in accesses.iter().enumerate() {
            let k = key(0, e);
            if t.lookup(k, now as u64 + 1).is_some() {
                hits += 1;
            } else {
                t.insert(k, (), 1);
            }
        }
        (hits, t)
    }

    #[test]
    fn lru_evicts_the_oldest() {
        let (hits, t) = run(PolicyKind::Lru, 2, &[1, 2, 1, 3, 1, 2]);
        // 1,2 miss; 1 hit; 3 evicts 2; 1 hit; 2 evicts 3.
        assert_eq!(hits, 2);
        assert!(t.contains(key(0, 1)) && t.contains(key(0, 2)) && !t.contains(key(0, 3)));
        assert_eq!(t.used(), 2);
    }

    #[test]
    fn lrfu_keeps_hot_experts_that_lru_churns_out() {
        // Each "token" asks for two hot experts and ten that are never seen again; a cache of
        // four. LRU sees eleven other experts between two uses of a hot one and never hits;
        // frequency keeps the hot pair.
        let mut seq = Vec::new();
        for t in 0..50u32 {
            seq.extend([1000, 1001]);
            seq.extend((0..10).map(|i| t * 10 + i));
        }
        let (lru, _) = run(PolicyKind::Lru, 4, &seq);
        let (lrfu, t) = run(PolicyKind::Lrfu { half_life: 1000.0 }, 4, &seq);
        assert_eq!(lru, 0);
        // All but the first few tokens (while scores build up) hit both hot experts.
        assert!(lrfu >= 2 * 45, "{lrfu}");
        assert!(t.contains(key(0, 1000)) && t.contains(key(0, 1001)));
    }

    #[test]
    fn lrfu_short_half_life_acts_like_lru() {
        let seq: Vec<u32> = (0..200).map(|i| (i * 7 % 5) as u32).collect();
        let (lru, _) = run(PolicyKind::Lru, 3, &seq);
        let (lrfu, _) = run(PolicyKind::Lrfu { half_life: 1e-3 }, 3, &seq);
        assert_eq!(lru, lrfu);
    }

    #[test]
    fn lrfu_scores_decay() {
        // Expert 9 was hot long ago; then 100 and 101 alternate. With a short half-life 9's
        // score fades and it is evicted; LFU (no decay) keeps it for its larger count.
        let mut seq = vec![9; 50];
        seq.extend((0..40).map(|i| 100 + (i % 2)));
        let (_, t) = run(PolicyKind::Lrfu { half_life: 10.0 }, 2, &seq);
        assert!(!t.contains(key(0, 9)));
        let (_, t) = run(
            PolicyKind::Lrfu {
                half_life: f64::INFINITY,
            },
            2,
            &seq,
        );
        assert!(t.contains(key(0, 9)), "LFU never forgets");
    }

    #[test]
    fn budget_in_bytes_and_zero_budget() {
        let mut t: Tier<u8> = Tier::new(10, PolicyKind::Lru);
        assert_eq!(t.lookup(1, 1), None);
        assert_eq!(t.insert(1, 1, 6), 0);
        t.lookup(2, 2);
        assert_eq!(t.insert(2, 2, 6), 1);
        assert_eq!((t.len(), t.used()), (1, 6));
        // Larger than the whole budget: not kept.
        t.lookup(3, 3);
        assert_eq!(t.insert(3, 3, 11), 2);
        assert!(t.is_empty());
        let mut off: Tier<u8> = Tier::new(0, PolicyKind::Lru);
        assert!(!off.enabled());
        assert_eq!(off.insert(1, 1, 1), 0);
        assert_eq!(off.lookup(1, 1), None);
    }
}
