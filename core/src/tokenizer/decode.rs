//! Token ids back to text: pieces, whole sequences, and streaming output.
//!
//! A token's piece is raw bytes, not always valid UTF-8 on its own (a byte-level BPE token can
//! hold half of a character). [`StreamDecoder`] therefore buffers bytes and releases only
//! complete characters.

use super::unicode::char_to_byte;
use super::vocab::{Vocab, VocabKind};
use super::{TokenAttr, Tokenizer};

/// The bytes of token `id` (llama.cpp's `token_to_piece` with no left-strip).
pub(crate) fn piece(vocab: &Vocab, id: u32, special: bool) -> Vec<u8> {
    let Some(attr) = vocab.attrs.get(id as usize).copied() else {
        return Vec::new();
    };
    let hidden = TokenAttr::UNKNOWN | TokenAttr::CONTROL;
    if !special && attr.intersects(hidden) {
        return Vec::new();
    }
    let text = &vocab.tokens[id as usize];
    if attr.intersects(hidden | TokenAttr::USER_DEFINED) {
        return text.as_bytes().to_vec();
    }
    if attr.intersects(TokenAttr::NORMAL) {
        return match vocab.kind {
            VocabKind::Bpe => byte_level_decode(text),
            VocabKind::Spm => text.replace('\u{2581}', " ").into_bytes(),
        };
    }
    if attr.intersects(TokenAttr::BYTE) {
        // `<0xXX>`
        return text
            .get(3..5)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map(|b| vec![b])
            .unwrap_or_default();
    }
    Vec::new() // UNUSED and UNDEFINED tokens print nothing
}

/// Maps each character of a byte-level token back to its byte; a character outside the
/// byte alphabet becomes a visible `[UNK_BYTE_0x..<token>]` marker, as in llama.cpp.
fn byte_level_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// llama.cpp's `detokenize`: concatenated pieces, optional removal of the added BOS/EOS, the
/// leading-space strip of space-prefixing vocabularies, and the English space clean-up.
pub(crate) fn detokenize(
    vocab: &Vocab,
    ids: &[u32],
    remove_special: bool,
    special: bool,
) -> Vec<u8> {
    let mut ids = ids;
    let mut strip_space = vocab.flags.add_space_prefix;
    if remove_special && vocab.flags.add_bos && ids.first().copied() == vocab.special.bos {
        strip_space = false;
        ids = &ids[1..];
    }
    if remove_special && vocab.flags.add_eos && ids.last().copied() == vocab.special.eos {
        ids = &ids[..ids.len() - 1];
    }
    let mut out = Vec::new();
    for &id in ids {
        let p = piece(vocab, id, special);
        let skip = usize::from(strip_space && p.first() == Some(&b' '));
        out.extend_from_slice(&p[skip..]);
        strip_space = false;
    }
    if vocab.flags.clean_spaces {
        clean_up_spaces(&mut out);
    }
    out
}

/// Removes the spaces English tokenizers put before `? ! . ,`, around a lone `'`, and before
/// the contractions `'s 'm 're 've` (three passes, as llama.cpp does them).
fn clean_up_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ,".
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // Pass 2: " ' " becomes "'". The dropped space after it is blanked in the source, so it
    // cannot serve as the space before a following apostrophe (llama.cpp works in place).
    let mut src = std::mem::take(&mut out);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            src[i + 1] = 0;
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // Pass 3: " 's", " 'm", " 're", " 've".
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' && i + 1 < src.len() {
            let x1 = src[i + 1];
            let x2 = src.get(i + 2).copied();
            let drop_space = matches!(x1, b's' | b'm')
                || matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e')));
            if drop_space {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

/// Turns a stream of token ids into text, holding back bytes of a character that is not
/// complete yet (an emoji split across tokens comes out whole, once).
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
}

impl StreamDecoder {
    /// `special`: whether control tokens print their text.
    pub fn new(special: bool) -> Self {
        StreamDecoder {
            pending: Vec::new(),
            special,
        }
    }

    /// Adds one token; returns the text that is complete now (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending
            .extend_from_slice(&tokenizer.token_to_piece(id, self.special));
        self.take_complete()
    }

    /// Releases whatever is left; incomplete sequences become U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // The prefix was just checked to be valid UTF-8.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..valid]));
                    match e.error_len() {
                        // Bytes that can never start a character: replace and go on.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            start = valid + bad;
                        }
                        // A character cut short at the end: wait for more bytes.
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_up_spaces(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn space_clean_up_matches_llama_cpp_rules() {
        assert_eq!(cleaned("Hello , world !"), "Hello, world!");
        assert_eq!(cleaned("rock ' n"), "rock'n");
        assert_eq!(cleaned("it 's we 're I 'll"), "it's we're I 'll");
    }

    #[test]
    fn byte_level_unknown_characters_are_marked() {
        assert_eq!(byte_level_decode("Ġhi"), b" hi");
        assert_eq!(
            byte_level_decode("€"),
            b"[UNK_BYTE_0xe282ac\xe2\x82\xac]".to_vec()
        );
    }
}
