//! Code point classification and the GPT-2 byte ↔ character map.
//!
//! Pre-tokenizer regexes test `\p{L}`, `\p{N}`, `\s`, ... against llama.cpp's own category table
//! (transcribed in [`super::unicode_table`]), never against the Unicode tables of a regex engine,
//! so that text splits exactly as llama.cpp splits it whatever Unicode version each side ships.

use super::unicode_table::{CATEGORY_RANGES, WHITESPACE};

/// Category and helper bits of one code point, as llama.cpp defines them.
#[allow(dead_code)] // the full set of llama.cpp bits, some only used in tests
pub(crate) mod flag {
    pub const UNDEFINED: u16 = 0x0001;
    pub const NUMBER: u16 = 0x0002;
    pub const LETTER: u16 = 0x0004;
    pub const SEPARATOR: u16 = 0x0008;
    pub const MARK: u16 = 0x0010;
    pub const PUNCTUATION: u16 = 0x0020;
    pub const SYMBOL: u16 = 0x0040;
    pub const CONTROL: u16 = 0x0080;
    /// Mask of the category bits (exactly one is set for every code point).
    pub const CATEGORIES: u16 = 0x00FF;
    pub const WHITESPACE: u16 = 0x0100;
}

/// Category bits plus the whitespace bit of `cp`.
pub(crate) fn flags(cp: u32) -> u16 {
    // Index of the last range starting at or before `cp`; the table starts at 0.
    let idx = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp) - 1;
    let category = CATEGORY_RANGES[idx].1 as u16;
    if is_whitespace(cp) {
        category | flag::WHITESPACE
    } else {
        category
    }
}

/// Whether llama.cpp counts `cp` as whitespace (the Unicode White_Space set).
pub(crate) fn is_whitespace(cp: u32) -> bool {
    match cp {
        0x09..=0x0D | 0x20 => true,
        0..=0x84 => false,
        _ => WHITESPACE.binary_search(&cp).is_ok(),
    }
}

/// The GPT-2 byte-level alphabet: byte `b` is written as the character `BYTE_TO_CHAR[b]`.
///
/// Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other 68
/// bytes, in increasing order, become U+0100, U+0101, ...
pub(crate) static BYTE_TO_CHAR: [char; 256] = build_byte_to_char();

const fn is_self_mapped(b: u32) -> bool {
    (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
}

const fn build_byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_extra = 0x100u32;
    let mut b = 0u32;
    while b < 256 {
        let cp = if is_self_mapped(b) {
            b
        } else {
            next_extra += 1;
            next_extra - 1
        };
        table[b as usize] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    table
}

/// The byte a byte-level character stands for, `None` if `c` is outside the alphabet.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 0x100 && is_self_mapped(cp) {
        return Some(cp as u8);
    }
    if !(0x100..0x100 + 68).contains(&cp) {
        return None;
    }
    // The n-th byte that is not self-mapped.
    let n = cp - 0x100;
    (0u32..256)
        .filter(|&b| !is_self_mapped(b))
        .nth(n as usize)
        .map(|b| b as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips_and_matches_gpt2() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(BYTE_TO_CHAR[b as usize]), Some(b));
        }
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[0xAD], 'Ń');
        assert_eq!(char_to_byte('a'), Some(b'a'));
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn categories_follow_the_table() {
        assert_eq!(flags('a' as u32), flag::LETTER);
        assert_eq!(flags('7' as u32), flag::NUMBER);
        assert_eq!(flags('$' as u32), flag::SYMBOL);
        assert_eq!(flags('!' as u32), flag::PUNCTUATION);
        assert_eq!(flags(' ' as u32), flag::SEPARATOR | flag::WHITESPACE);
        assert_eq!(flags('\n' as u32), flag::CONTROL | flag::WHITESPACE);
        assert_eq!(flags(0x4E2D), flag::LETTER); // 中
        assert_eq!(flags(0x0301), flag::MARK); // combining acute
        assert_eq!(flags(0x3000) & flag::WHITESPACE, flag::WHITESPACE);
        assert_eq!(flags(0x10FFFF) & flag::CATEGORIES, flag::UNDEFINED);
    }
}
