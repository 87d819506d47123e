//! Splitting with a general regex, the way llama.cpp runs its `std::regex` fallback.
//!
//! llama.cpp cannot give `std::regex` Unicode categories, so for a regex that uses `\p{..}` it
//! first *collapses* the text: every code point ≥ 128 becomes one stand-in character for its
//! category (whitespace, N, L, P, M, S or "other"), ASCII stays as is, and each `\p{X}` in the
//! regex becomes a class of X's stand-in plus X's ASCII members. A regex without `\p{..}` runs
//! on the code points themselves, with non-ASCII whitespace turned into U+000B so that `\s`
//! (ASCII-only in `std::regex`) still sees it.
//!
//! We do the same with `fancy-regex` (for the look-aheads), using private-use characters as the
//! stand-ins. Both engines are backtracking with leftmost-first alternation, so matches agree.

use super::unicode::flag;
use crate::{Error, Result};
use std::ops::Range;

/// Stand-ins for non-ASCII code points in the collapsed text (U+E0D0 + llama.cpp's byte - 0xD0).
const STAND_IN_OTHER: char = '\u{E0D0}';
const STAND_IN_NUMBER: char = '\u{E0D1}';
const STAND_IN_LETTER: char = '\u{E0D2}';
const STAND_IN_PUNCTUATION: char = '\u{E0D3}';
const STAND_IN_MARK: char = '\u{E0D4}';
const STAND_IN_SYMBOL: char = '\u{E0D5}';
/// Non-ASCII whitespace becomes a vertical tab, which `\s` matches.
const STAND_IN_WHITESPACE: char = '\u{0B}';

/// The category escapes llama.cpp understands, with the category each one selects.
/// (`\p{Lu}` and friends all select the whole letter category, as in llama.cpp.)
const CATEGORY_ESCAPES: [(&str, u16); 10] = [
    ("\\p{N}", flag::NUMBER),
    ("\\p{L}", flag::LETTER),
    ("\\p{P}", flag::PUNCTUATION),
    ("\\p{M}", flag::MARK),
    ("\\p{S}", flag::SYMBOL),
    ("\\p{Lu}", flag::LETTER),
    ("\\p{Ll}", flag::LETTER),
    ("\\p{Lt}", flag::LETTER),
    ("\\p{Lm}", flag::LETTER),
    ("\\p{Lo}", flag::LETTER),
];

/// Class members standing for category `category` in a collapsed regex: the stand-in and the
/// ASCII characters of that category.
fn category_class_members(category: u16) -> &'static str {
    match category {
        flag::NUMBER => r"\x{E0D1}0-9",
        flag::LETTER => r"\x{E0D2}A-Za-z",
        // ! " # % & ' ( ) * , - . / : ; ? @ [ \ ] _ { }
        flag::PUNCTUATION => {
            r"\x{E0D3}\x{21}-\x{23}\x{25}-\x{2A}\x{2C}-\x{2F}\x{3A}-\x{3B}\x{3F}-\x{40}\x{5B}-\x{5D}\x{5F}\x{7B}\x{7D}"
        }
        flag::MARK => r"\x{E0D4}",
        // $ + < = > ^ ` | ~
        flag::SYMBOL => r"\x{E0D5}\x{24}\x{2B}\x{3C}-\x{3E}\x{5E}\x{60}\x{7C}\x{7E}",
        _ => "",
    }
}

/// One compiled split regex and the text representation it runs on.
pub(crate) struct SplitRegex {
    regex: fancy_regex::Regex,
    collapsed: bool,
}

/// Texts derived once per split call and shared by all regexes of a pre-tokenizer.
pub(crate) struct RegexTexts {
    collapsed: Option<MappedText>,
    plain: Option<MappedText>,
}

/// A string with one character per code point of the input, and where each one starts.
struct MappedText {
    text: String,
    /// Byte offset of code point i (and the total length at index n).
    byte_of_cp: Vec<usize>,
}

impl MappedText {
    fn build(cps: &[u32], flags: &[u16], map: impl Fn(u32, u16) -> char) -> Self {
        let mut text = String::with_capacity(cps.len());
        let mut byte_of_cp = Vec::with_capacity(cps.len() + 1);
        for (&cp, &f) in cps.iter().zip(flags) {
            byte_of_cp.push(text.len());
            text.push(map(cp, f));
        }
        byte_of_cp.push(text.len());
        MappedText { text, byte_of_cp }
    }

    fn cp_of_byte(&self, byte: usize) -> usize {
        // Matches start and end on character boundaries, which are exactly the recorded offsets.
        self.byte_of_cp.partition_point(|&b| b < byte)
    }
}

fn collapse(cp: u32, f: u16) -> char {
    if cp < 128 {
        return char::from_u32(cp).unwrap_or(STAND_IN_OTHER);
    }
    if f & flag::WHITESPACE != 0 {
        return STAND_IN_WHITESPACE;
    }
    match f & flag::CATEGORIES {
        flag::NUMBER => STAND_IN_NUMBER,
        flag::LETTER => STAND_IN_LETTER,
        flag::PUNCTUATION => STAND_IN_PUNCTUATION,
        flag::MARK => STAND_IN_MARK,
        flag::SYMBOL => STAND_IN_SYMBOL,
        _ => STAND_IN_OTHER,
    }
}

fn whitespace_to_vt(cp: u32, f: u16) -> char {
    if cp > 0x7F && f & flag::WHITESPACE != 0 {
        STAND_IN_WHITESPACE
    } else {
        char::from_u32(cp).unwrap_or('\u{FFFD}')
    }
}

impl SplitRegex {
    /// Compiles one of llama.cpp's split regexes (its own syntax, see the module docs).
    pub(crate) fn new(pattern: &str) -> Result<Self> {
        let collapsed = CATEGORY_ESCAPES
            .iter()
            .any(|(esc, _)| pattern.contains(esc));
        let translated = if collapsed {
            translate_collapsed(pattern)?
        } else {
            pattern.to_owned()
        };
        let regex = fancy_regex::RegexBuilder::new(&translated)
            .backtrack_limit(usize::MAX / 2)
            .build()
            .map_err(|e| Error::Invalid(format!("split regex {pattern:?}: {e}")))?;
        Ok(SplitRegex { regex, collapsed })
    }

    /// Splits each segment into matches and the gaps between them (nothing is dropped).
    pub(crate) fn split(
        &self,
        cps: &[u32],
        flags: &[u16],
        texts: &mut RegexTexts,
        segments: &[Range<usize>],
    ) -> Vec<Range<usize>> {
        let mapped = if self.collapsed {
            texts
                .collapsed
                .get_or_insert_with(|| MappedText::build(cps, flags, collapse))
        } else {
            texts
                .plain
                .get_or_insert_with(|| MappedText::build(cps, flags, whitespace_to_vt))
        };
        let mut out = Vec::with_capacity(segments.len() * 2);
        for seg in segments {
            let base = mapped.byte_of_cp[seg.start];
            let haystack = &mapped.text[base..mapped.byte_of_cp[seg.end]];
            let mut done = seg.start;
            for found in self.regex.find_iter(haystack) {
                // A search that gives up (backtrack limit) leaves the rest of the segment whole.
                let Ok(m) = found else { break };
                let start = mapped.cp_of_byte(base + m.start());
                let end = mapped.cp_of_byte(base + m.end());
                if start > done {
                    out.push(done..start);
                }
                if end > start {
                    out.push(start..end);
                }
                done = done.max(end);
            }
            if done < seg.end {
                out.push(done..seg.end);
            }
        }
        out
    }
}

impl RegexTexts {
    pub(crate) fn new() -> Self {
        RegexTexts {
            collapsed: None,
            plain: None,
        }
    }
}

/// Rewrites a llama.cpp regex that uses `\p{..}` for the collapsed text, as llama.cpp does:
/// each category escape becomes its class members, wrapped in `[...]` unless already in a class.
fn translate_collapsed(pattern: &str) -> Result<String> {
    if !pattern.is_ascii() {
        return Err(Error::Invalid(format!(
            "split regex {pattern:?} mixes \\p{{..}} categories with non-ASCII characters"
        )));
    }
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = i > 0 && bytes[i - 1] == b'\\';
        if b == b'[' && !escaped {
            in_class = true;
            out.push('[');
            i += 1;
            continue;
        }
        if b == b']' && in_class && !escaped {
            in_class = false;
            out.push(']');
            i += 1;
            continue;
        }
        if let Some((esc, category)) = CATEGORY_ESCAPES
            .iter()
            .find(|(esc, _)| pattern[i..].starts_with(esc))
        {
            if !in_class {
                out.push('[');
            }
            out.push_str(category_class_members(*category));
            if !in_class {
                out.push(']');
            }
            i += esc.len();
            continue;
        }
        out.push(b as char);
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::unicode;

    fn split_words(pattern: &str, text: &str) -> Vec<String> {
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let flags: Vec<u16> = cps.iter().map(|&c| unicode::flags(c)).collect();
        let re = SplitRegex::new(pattern).expect("pattern compiles");
        let pieces = re.split(&cps, &flags, &mut RegexTexts::new(), &[0..cps.len()]);
        pieces
            .into_iter()
            .map(|r| text.chars().skip(r.start).take(r.len()).collect())
            .collect()
    }

    #[test]
    fn categories_apply_to_non_ascii_through_stand_ins() {
        assert_eq!(
            split_words(r"\p{N}{1,3}", "a12345ب٣٤"),
            ["a", "123", "45", "ب", "٣٤"]
        );
        assert_eq!(
            split_words(r"\s+(?!\S)|\s+", "a \u{3000}\u{3000}b"),
            ["a", " \u{3000}", "\u{3000}", "b"]
        );
    }

    #[test]
    fn gaps_between_matches_are_kept() {
        assert_eq!(
            split_words("[0-9][0-9][0-9]", "x12345y"),
            ["x", "123", "45y"]
        );
    }

    #[test]
    fn translation_wraps_escapes_outside_classes_only() {
        assert_eq!(
            translate_collapsed(r"[^\s\p{N}]\p{M}").unwrap_or_default(),
            r"[^\s\x{E0D1}0-9][\x{E0D4}]"
        );
        assert!(translate_collapsed("\\p{L}é").is_err());
    }
}
