//! SentencePiece-style BPE (`tokenizer.ggml.model = llama`).
//!
//! The text (spaces already written as `▁`) starts as one symbol per UTF-8 character. Adjacent
//! pairs whose concatenation is a token are merged, highest token score first (ties: leftmost).
//! Symbols that end up not being tokens are emitted byte by byte as `<0xXX>` tokens.

use std::collections::{BinaryHeap, HashMap};

/// A queued merge candidate.
#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to recognise stale entries.
    size: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Max-heap: higher score first, then the smaller left index.
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the SentencePiece encoder needs to know about the vocabulary.
pub(crate) struct SpmVocab<'a> {
    pub token_to_id: &'a HashMap<String, u32>,
    pub scores: &'a [f32],
    /// Token for each byte value (`<0xXX>`, else the one-byte string), if any.
    pub byte_tokens: &'a [Option<u32>; 256],
}

/// Encodes `text` (whitespace already escaped), appending token ids.
pub(crate) fn encode(vocab: &SpmVocab, text: &str, out: &mut Vec<u32>) {
    // Symbols: byte ranges of `text`; a merged-away symbol has length 0.
    let start: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = start.len();
    if n == 0 {
        return;
    }
    let mut len: Vec<usize> = (0..n)
        .map(|i| start.get(i + 1).copied().unwrap_or(text.len()) - start[i])
        .collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut next: Vec<usize> = (1..=n).collect();
    let mut queue = BinaryHeap::new();

    let try_add = |queue: &mut BinaryHeap<Bigram>, start: &[usize], len: &[usize], l, r| {
        let piece = &text[start[l]..start[r] + len[r]];
        if let Some(&id) = vocab.token_to_id.get(piece) {
            let score = vocab.scores.get(id as usize).copied().unwrap_or(0.0);
            queue.push(Bigram {
                score,
                left: l,
                right: r,
                size: piece.len(),
            });
        }
    };
    for i in 1..n {
        try_add(&mut queue, &start, &len, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (b.left, b.right);
        if len[l] == 0 || len[r] == 0 || len[l] + len[r] != b.size {
            continue;
        }
        len[l] += len[r];
        len[r] = 0;
        next[l] = next[r];
        if next[r] < n {
            prev[next[r]] = l;
        }
        if prev[l] < n {
            try_add(&mut queue, &start, &len, prev[l], l);
        }
        if next[l] < n {
            try_add(&mut queue, &start, &len, l, next[l]);
        }
    }
    let mut i = 0;
    while i < n {
        let piece = &text[start[i]..start[i] + len[i]];
        match vocab.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            // A merged symbol is always a token, so only single characters get here.
            None => out.extend(piece.bytes().filter_map(|b| vocab.byte_tokens[b as usize])),
        }
        i = next[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_merges_first_and_unknowns_fall_back_to_bytes() {
        let tokens = ["<unk>", "▁", "a", "b", "ab", "▁a", "<0xC3>", "<0xA9>"];
        let scores = [0.0, -1.0, -2.0, -2.0, -0.5, -0.1, 0.0, 0.0];
        let map: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let mut bytes = [None; 256];
        bytes[0xC3] = Some(6);
        bytes[0xA9] = Some(7);
        let vocab = SpmVocab {
            token_to_id: &map,
            scores: &scores,
            byte_tokens: &bytes,
        };
        let mut out = Vec::new();
        encode(&vocab, "▁ab", &mut out);
        assert_eq!(out, [5, 3]); // "▁a" (-0.1) beats "ab" (-0.5)
        out.clear();
        encode(&vocab, "é", &mut out);
        assert_eq!(out, [6, 7]);
    }
}
