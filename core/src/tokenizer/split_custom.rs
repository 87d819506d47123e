//! Hand-written matchers that llama.cpp substitutes for its most common split regexes.
//!
//! llama.cpp does not run the GPT-2, Llama-3 and Qwen2 regexes through a regex engine: it walks
//! the code points with hand-written loops, and those loops differ from the regexes in a few
//! corners (a lone trailing space, unassigned code points, ...). Tokenizers that use these
//! regexes must reproduce the loops, so they are re-implemented here to the same behaviour.
//!
//! Every matcher works on one segment `[start, end)` of the code point array and appends the
//! pieces it cuts (covering the whole segment, in order) to `out`.

use super::unicode::flag;
use std::ops::Range;

/// A code point array with its flags, as the matchers see it.
pub(crate) struct Classified<'a> {
    pub cps: &'a [u32],
    pub flags: &'a [u16],
}

/// Helper state for one segment: lookups that read "nothing" past the segment end.
struct Cursor<'a, 'o> {
    text: &'a Classified<'a>,
    end: usize,
    piece_start: usize,
    out: &'o mut Vec<Range<usize>>,
}

/// What a lookup past the end of the segment returns as the code point.
const PAST_END: u32 = u32::MAX;

impl Cursor<'_, '_> {
    fn cp(&self, pos: usize) -> u32 {
        if pos < self.end {
            self.text.cps[pos]
        } else {
            PAST_END
        }
    }

    /// Flags at `pos`, or 0 (no bit at all) past the segment end.
    fn flags(&self, pos: usize) -> u16 {
        if pos < self.end {
            self.text.flags[pos]
        } else {
            0
        }
    }

    /// Closes the current piece at `to` (empty pieces are dropped).
    fn cut(&mut self, to: usize) {
        if to > self.piece_start {
            self.out.push(self.piece_start..to);
        }
        self.piece_start = to;
    }

    /// Length of an English contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `pos`.
    fn contraction_len(&self, pos: usize, case_insensitive: bool) -> Option<usize> {
        if self.cp(pos) != u32::from(b'\'') || pos + 1 >= self.end {
            return None;
        }
        // Only ASCII capitals lower-case to these letters in llama.cpp's case table.
        let lower = |cp: u32| {
            if case_insensitive && (0x41..=0x5A).contains(&cp) {
                cp + 0x20
            } else {
                cp
            }
        };
        let next = lower(self.cp(pos + 1));
        if [b's', b't', b'm', b'd']
            .iter()
            .any(|&c| u32::from(c) == next)
        {
            return Some(2);
        }
        if pos + 2 < self.end {
            let pair = (next, lower(self.cp(pos + 2)));
            let two = |a: u8, b: u8| (u32::from(a), u32::from(b));
            if pair == two(b'r', b'e') || pair == two(b'v', b'e') || pair == two(b'l', b'l') {
                return Some(3);
            }
        }
        None
    }

    /// Counts the whitespace run at `pos`; also returns the end of its last CR/LF, if any.
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut n = 0;
        let mut last_newline_end = None;
        while self.flags(pos + n) & flag::WHITESPACE != 0 {
            if is_cr_or_lf(self.cp(pos + n)) {
                last_newline_end = Some(pos + n + 1);
            }
            n += 1;
        }
        (n, last_newline_end)
    }
}

fn is_cr_or_lf(cp: u32) -> bool {
    cp == u32::from(b'\r') || cp == u32::from(b'\n')
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (GPT-2).
pub(crate) fn split_gpt2(text: &Classified, segment: Range<usize>, out: &mut Vec<Range<usize>>) {
    let mut c = Cursor {
        text,
        end: segment.end,
        piece_start: segment.start,
        out,
    };
    let mut pos = segment.start;
    while pos < c.end {
        let cp = c.cp(pos);
        if let Some(len) = c.contraction_len(pos, false) {
            pos += len;
            c.cut(pos);
            continue;
        }
        let space_led = cp == u32::from(b' ');
        let lead = if space_led {
            c.flags(pos + 1)
        } else {
            c.flags(pos)
        };
        let other = |f: u16| f & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0 && f != 0;
        let run_class: Option<fn(u16) -> bool> = if lead & flag::LETTER != 0 {
            Some(|f| f & flag::LETTER != 0)
        } else if lead & flag::NUMBER != 0 {
            Some(|f| f & flag::NUMBER != 0)
        } else if other(lead) {
            Some(|f| f & (flag::WHITESPACE | flag::LETTER | flag::NUMBER) == 0 && f != 0)
        } else {
            None
        };
        if let Some(in_run) = run_class {
            if space_led {
                pos += 1;
            }
            while in_run(c.flags(pos)) {
                pos += 1;
            }
            c.cut(pos);
            continue;
        }
        let (n_ws, _) = c.whitespace_run(pos);
        if n_ws > 1 && c.cp(pos + n_ws) != PAST_END {
            // \s+(?!\S): leave the last blank to lead the next word.
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        c.cut(pos);
    }
}

/// The Llama-3 family (`digits_per_piece` 3), Qwen2 (1) and Qwen3.5 (1, marks count as letters):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(crate) fn split_llama3_like(
    text: &Classified,
    segment: Range<usize>,
    out: &mut Vec<Range<usize>>,
    digits_per_piece: usize,
    marks_are_letters: bool,
) {
    let word_bits = if marks_are_letters {
        flag::LETTER | flag::MARK
    } else {
        flag::LETTER
    };
    let not_punct_bits = flag::WHITESPACE | flag::NUMBER | word_bits;
    let mut c = Cursor {
        text,
        end: segment.end,
        piece_start: segment.start,
        out,
    };
    let mut pos = segment.start;
    while pos < c.end {
        let cp = c.cp(pos);
        let here = c.flags(pos);
        if let Some(len) = c.contraction_len(pos, true) {
            pos += len;
            c.cut(pos);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !is_cr_or_lf(cp) && here & flag::NUMBER == 0 {
            let is_word = |f: u16| f & word_bits != 0;
            if is_word(here) || is_word(c.flags(pos + 1)) {
                pos += 1;
                while is_word(c.flags(pos)) {
                    pos += 1;
                }
                c.cut(pos);
                continue;
            }
        }
        // \p{N}{1,k}
        if here & flag::NUMBER != 0 {
            let mut group_start = pos;
            while c.flags(pos) & flag::NUMBER != 0 {
                pos += 1;
                if pos - group_start >= digits_per_piece {
                    c.cut(pos);
                    group_start = pos;
                }
            }
            c.cut(pos);
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*' (the first test looks at the current code point's flags)
        let space_led = cp == u32::from(b' ');
        let lead = if space_led { c.flags(pos + 1) } else { here };
        if lead & not_punct_bits == 0 && here != 0 {
            if space_led {
                pos += 1;
            }
            while c.flags(pos) & not_punct_bits == 0 && c.flags(pos) != 0 {
                pos += 1;
            }
            while is_cr_or_lf(c.cp(pos)) {
                pos += 1;
            }
            c.cut(pos);
            continue;
        }
        let (n_ws, last_newline_end) = c.whitespace_run(pos);
        if let Some(newline_end) = last_newline_end {
            // \s*[\r\n]+
            pos = newline_end;
        } else if n_ws > 1 && c.cp(pos + n_ws) != PAST_END {
            // \s+(?!\S)
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        c.cut(pos);
    }
}
