//! Byte-level BPE: merge table and word encoding (`tokenizer.ggml.model = gpt2`).
//!
//! Each pre-tokenized word is written in the GPT-2 byte alphabet, cut into one symbol per byte,
//! and adjacent pairs are merged lowest rank first (ties: leftmost) until no listed pair is left.
//! Strings are interned to integers once at load time, so the merge loop compares numbers:
//! ids below `n_vocab` are token ids, higher ids stand for merge operands that are not tokens.

use super::unicode::BYTE_TO_CHAR;
use crate::{Error, Result};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher for integer keys (the merge table is hit once per pair).
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517C_C1B7_2722_0A95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Symbol id that is neither a token nor a merge operand: it can never merge.
const NO_SYMBOL: u32 = u32::MAX;

/// The merge table of one vocabulary.
pub(crate) struct Merges {
    /// (left symbol, right symbol) → (rank, merged symbol).
    pairs: IntMap<u64, (u32, u32)>,
    /// Texts of interned strings that are not tokens (symbol id `n_vocab + i`).
    extra_texts: Vec<String>,
    n_vocab: u32,
    /// Symbol of each byte's one-character string.
    byte_symbols: [u32; 256],
}

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl Merges {
    /// Builds the table from `tokenizer.ggml.merges` (each entry `"left right"`, rank = index).
    pub(crate) fn new(merges: &[&str], token_to_id: &HashMap<String, u32>) -> Result<Self> {
        let n_vocab = u32::try_from(token_to_id.len())
            .map_err(|_| Error::model("tokenizer.ggml.tokens: too many tokens"))?;
        let mut extra_ids: HashMap<String, u32> = HashMap::new();
        let mut extra_texts = Vec::new();
        let mut intern = |text: &str| -> u32 {
            if let Some(&id) = token_to_id.get(text) {
                return id;
            }
            if let Some(&id) = extra_ids.get(text) {
                return id;
            }
            let id = n_vocab + extra_texts.len() as u32;
            extra_ids.insert(text.to_owned(), id);
            extra_texts.push(text.to_owned());
            id
        };
        let mut pairs: IntMap<u64, (u32, u32)> = IntMap::default();
        pairs.reserve(merges.len());
        let mut joined = String::new();
        for (rank, entry) in merges.iter().enumerate() {
            // Split at the first space at byte index >= 1 (a merge may start with a space).
            let Some(split) = entry
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1)
            else {
                continue; // llama.cpp records an empty pair, which can never apply
            };
            let (left, right) = (&entry[..split], &entry[split + 1..]);
            if left.is_empty() || right.is_empty() {
                continue;
            }
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let (l, r, m) = (intern(left), intern(right), intern(&joined));
            // The first occurrence of a pair keeps its rank.
            pairs.entry(pair_key(l, r)).or_insert((rank as u32, m));
        }
        let mut byte_symbols = [NO_SYMBOL; 256];
        let mut buf = [0u8; 4];
        for (b, sym) in byte_symbols.iter_mut().enumerate() {
            let text = BYTE_TO_CHAR[b].encode_utf8(&mut buf);
            if let Some(&id) = token_to_id.get(&*text).or_else(|| extra_ids.get(&*text)) {
                *sym = id;
            }
        }
        Ok(Merges {
            pairs,
            extra_texts,
            n_vocab,
            byte_symbols,
        })
    }

    /// Encodes one word (raw UTF-8 bytes), appending token ids.
    ///
    /// `ignore_merges`: a word whose byte-level spelling is a token is emitted as that token.
    /// `lookup` finds a token by text (for that check and for the byte fallback).
    pub(crate) fn encode_word(
        &self,
        word: &[u8],
        ignore_merges: bool,
        lookup: &dyn Fn(&str) -> Option<u32>,
        out: &mut Vec<u32>,
    ) {
        if word.is_empty() {
            return;
        }
        if ignore_merges {
            let spelled: String = word.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect();
            if let Some(id) = lookup(&spelled) {
                out.push(id);
                return;
            }
        }
        // Doubly linked list of symbols: (symbol id, prev, next, first byte, alive).
        let n = word.len();
        let mut sym: Vec<u32> = word
            .iter()
            .map(|&b| self.byte_symbols[b as usize])
            .collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut alive = vec![true; n];
        // Min-heap on (rank, left index); entries remember the symbols they were made from.
        let mut heap: BinaryHeap<Reverse<(u32, usize, usize, u32, u32)>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, sym: &[u32], left: usize, right: usize| {
            let (l, r) = (sym[left], sym[right]);
            if l == NO_SYMBOL || r == NO_SYMBOL {
                return;
            }
            if let Some(&(rank, _)) = self.pairs.get(&pair_key(l, r)) {
                heap.push(Reverse((rank, left, right, l, r)));
            }
        };
        for i in 1..n {
            push(&mut heap, &sym, i - 1, i);
        }
        while let Some(Reverse((_, left, right, l, r))) = heap.pop() {
            // Stale: one side was merged away or has grown since the pair was queued.
            if !alive[left] || !alive[right] || sym[left] != l || sym[right] != r {
                continue;
            }
            let Some(&(_, merged)) = self.pairs.get(&pair_key(l, r)) else {
                continue;
            };
            sym[left] = merged;
            alive[right] = false;
            next[left] = next[right];
            if next[right] < n {
                prev[next[right]] = left;
            }
            if prev[left] < n {
                push(&mut heap, &sym, prev[left], left);
            }
            if next[left] < n {
                push(&mut heap, &sym, left, next[left]);
            }
        }
        let mut i = 0;
        while i < n {
            let s = sym[i];
            if s < self.n_vocab {
                out.push(s);
            } else {
                // Not a token: fall back to the single bytes of its spelling that are tokens.
                let spelled = if s == NO_SYMBOL {
                    BYTE_TO_CHAR[word[i] as usize].to_string()
                } else {
                    self.extra_texts[(s - self.n_vocab) as usize].clone()
                };
                for b in spelled.bytes().filter(u8::is_ascii) {
                    if let Some(id) = lookup(&(b as char).to_string()) {
                        out.push(id);
                    }
                }
            }
            i = next[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> HashMap<String, u32> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect()
    }

    #[test]
    fn merges_lowest_rank_first() {
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc", "Ġ", "Ġa"]);
        let m = Merges::new(&["b c", "a b", "a bc", "Ġ a"], &v).expect("table");
        let lookup = |t: &str| v.get(t).copied();
        let mut out = Vec::new();
        m.encode_word(b"abc", false, &lookup, &mut out);
        assert_eq!(out, [5]); // b+c first (rank 0), then a+bc
        out.clear();
        m.encode_word(b" ab", false, &lookup, &mut out);
        assert_eq!(out, [6, 3]); // "a b" (rank 1) beats "Ġ a" (rank 3): Ġ + ab
    }

    #[test]
    fn ignore_merges_takes_whole_word_tokens() {
        let v = vocab(&["a", "b", "ab", "ba", "bab"]);
        let m = Merges::new(&["a b", "b a"], &v).expect("table");
        let lookup = |t: &str| v.get(t).copied();
        let mut out = Vec::new();
        m.encode_word(b"bab", false, &lookup, &mut out);
        assert_eq!(out, [1, 2]);
        out.clear();
        m.encode_word(b"bab", true, &lookup, &mut out);
        assert_eq!(out, [4]);
    }
}
