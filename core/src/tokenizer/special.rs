//! Cutting special-token texts out of the input before BPE (llama.cpp's
//! `tokenizer_st_partition`).
//!
//! Candidate tokens are tried longest text first. Each one is searched in every raw-text
//! fragment still left, and every occurrence splits its fragment into `text | token | text`.
//! CONTROL and UNKNOWN tokens only take part when `parse_special` is set; USER_DEFINED tokens
//! always do. Tokens with LSTRIP / RSTRIP also swallow ASCII whitespace on that side.

use super::vocab::Vocab;
use super::TokenAttr;
use std::ops::Range;

/// A piece of the partitioned input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Raw text still to be tokenized: a byte range of the input.
    Text(Range<usize>),
    /// A special token found in the text.
    Token(u32),
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Partitions `text` (non-empty) on special tokens.
pub(crate) fn partition(vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
    let mut fragments = vec![Fragment::Text(0..text.len())];
    if text.is_empty() {
        fragments.clear();
        return fragments;
    }
    let bytes = text.as_bytes();
    for &id in &vocab.special_cache {
        let attr = vocab.attrs[id as usize];
        if !parse_special && attr.intersects(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            continue;
        }
        let needle = vocab.tokens[id as usize].as_str();
        // Cheap skip: most special tokens occur nowhere in the text.
        if !text.contains(needle) {
            continue;
        }
        let mut next = Vec::with_capacity(fragments.len() + 2);
        for fragment in fragments {
            let Fragment::Text(range) = fragment else {
                next.push(fragment);
                continue;
            };
            let mut rest = range;
            while let Some(found) = text[rest.clone()].find(needle) {
                let at = rest.start + found;
                let mut left_end = at;
                if attr.intersects(TokenAttr::LSTRIP) {
                    while left_end > rest.start && is_c_space(bytes[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > rest.start {
                    next.push(Fragment::Text(rest.start..left_end));
                }
                next.push(Fragment::Token(id));
                let mut right_start = at + needle.len();
                if attr.intersects(TokenAttr::RSTRIP) {
                    while right_start < rest.end && is_c_space(bytes[right_start]) {
                        right_start += 1;
                    }
                }
                rest = right_start..rest.end;
                if rest.is_empty() {
                    break;
                }
            }
            if !rest.is_empty() {
                next.push(Fragment::Text(rest));
            }
        }
        fragments = next;
    }
    fragments
}
