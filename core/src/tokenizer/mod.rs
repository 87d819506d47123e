//! Text ↔ token ids, as llama.cpp does it for the same GGUF vocabulary.
//!
//! Encoding: special-token texts are cut out first ([`special`]), each remaining fragment is
//! split into words by the vocabulary's pre-tokenizer ([`pretokenize`]) and merged by byte-level
//! BPE ([`bpe`]), or — for SentencePiece vocabularies — space-escaped and merged by score
//! ([`spm`]). Decoding maps ids back to bytes ([`decode`]). Loading reads the `tokenizer.*`
//! metadata keys ([`vocab`]). Everything here is pure computation and builds for wasm32.

mod bpe;
mod decode;
mod pretokenize;
mod regex_split;
mod special;
mod split_custom;
mod spm;
mod unicode;
mod unicode_table;
mod vocab;

pub use decode::StreamDecoder;
pub use vocab::{SpecialTokens, VocabKind};

use crate::gguf::Metadata;
use crate::Result;
use special::Fragment;
use std::ops::{BitOr, BitOrAssign};
use vocab::Vocab;

/// Token attributes (llama.cpp's `llama_token_attr` bits).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenAttr(u32);

impl TokenAttr {
    pub const UNDEFINED: TokenAttr = TokenAttr(0);
    pub const UNKNOWN: TokenAttr = TokenAttr(1 << 0);
    pub const UNUSED: TokenAttr = TokenAttr(1 << 1);
    pub const NORMAL: TokenAttr = TokenAttr(1 << 2);
    pub const CONTROL: TokenAttr = TokenAttr(1 << 3);
    pub const USER_DEFINED: TokenAttr = TokenAttr(1 << 4);
    pub const BYTE: TokenAttr = TokenAttr(1 << 5);
    pub const NORMALIZED: TokenAttr = TokenAttr(1 << 6);
    pub const LSTRIP: TokenAttr = TokenAttr(1 << 7);
    pub const RSTRIP: TokenAttr = TokenAttr(1 << 8);
    pub const SINGLE_WORD: TokenAttr = TokenAttr(1 << 9);

    /// From a GGUF token type (`tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte; anything else undefined).
    pub fn from_type(token_type: i32) -> TokenAttr {
        match token_type {
            1 => TokenAttr::NORMAL,
            2 => TokenAttr::UNKNOWN,
            3 => TokenAttr::CONTROL,
            4 => TokenAttr::USER_DEFINED,
            5 => TokenAttr::UNUSED,
            6 => TokenAttr::BYTE,
            _ => TokenAttr::UNDEFINED,
        }
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: TokenAttr) -> bool {
        self.0 & other.0 != 0
    }

    pub fn without(self, other: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 & !other.0)
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl BitOr for TokenAttr {
    type Output = TokenAttr;
    fn bitor(self, rhs: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 | rhs.0)
    }
}

impl BitOrAssign for TokenAttr {
    fn bitor_assign(&mut self, rhs: TokenAttr) {
        self.0 |= rhs.0;
    }
}

/// The algorithm-specific part of a tokenizer.
enum Encoder {
    Bpe {
        pre: pretokenize::PreTokenizer,
        merges: bpe::Merges,
    },
    Spm {
        byte_tokens: Box<[Option<u32>; 256]>,
    },
}

/// A vocabulary ready to encode and decode.
pub struct Tokenizer {
    vocab: Vocab,
    encoder: Encoder,
}

impl Tokenizer {
    /// Builds the tokenizer described by the `tokenizer.*` keys of a GGUF file.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let vocab = Vocab::load(md)?;
        let encoder = match vocab.kind {
            VocabKind::Bpe => {
                let kind = vocab
                    .pre
                    .map(|p| p.kind)
                    .unwrap_or(pretokenize::PreKind::Default);
                Encoder::Bpe {
                    pre: pretokenize::PreTokenizer::new(kind)?,
                    merges: bpe::Merges::new(&vocab::read_merges(md)?, &vocab.token_to_id)?,
                }
            }
            VocabKind::Spm => Encoder::Spm {
                byte_tokens: Box::new(vocab.spm_byte_tokens()),
            },
        };
        Ok(Tokenizer { vocab, encoder })
    }

    /// Text → token ids (llama.cpp's `llama_tokenize`).
    ///
    /// `add_special`: add BOS / EOS as the vocabulary asks. `parse_special`: recognise the text
    /// of control tokens (user-defined tokens are always recognised).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let flags = self.vocab.flags;
        if add_special && flags.add_bos {
            out.extend(self.vocab.special.bos);
        }
        let fragments = special::partition(&self.vocab, text, parse_special);
        match &self.encoder {
            Encoder::Bpe { pre, merges } => {
                let lookup = |t: &str| self.vocab.token_to_id.get(t).copied();
                for fragment in fragments {
                    match fragment {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(range) => {
                            let fragment_text = &text[range];
                            for word in pre.split(fragment_text) {
                                merges.encode_word(
                                    fragment_text[word].as_bytes(),
                                    flags.ignore_merges,
                                    &lookup,
                                    &mut out,
                                );
                            }
                        }
                    }
                }
            }
            Encoder::Spm { byte_tokens } => {
                let spm_vocab = spm::SpmVocab {
                    token_to_id: &self.vocab.token_to_id,
                    scores: &self.vocab.scores,
                    byte_tokens,
                };
                // A space is prefixed at the start and after every special token.
                let mut after_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                        Fragment::Text(range) => {
                            let mut piece = String::with_capacity(range.len() + 3);
                            if flags.add_space_prefix && after_special {
                                piece.push(' ');
                            }
                            piece.push_str(&text[range]);
                            let escaped = piece.replace(' ', "\u{2581}");
                            spm::encode(&spm_vocab, &escaped, &mut out);
                            after_special = false;
                        }
                    }
                }
            }
        }
        if add_special && flags.add_eos {
            out.extend(self.vocab.special.eos);
        }
        out
    }

    /// The bytes token `id` stands for (llama.cpp's `token_to_piece`): control and unknown
    /// tokens give their text only with `special`; unused and out-of-range ids give nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        decode::piece(&self.vocab, id, special)
    }

    /// Token ids → text (llama.cpp's `detokenize` without removing BOS/EOS); bytes that are
    /// not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, special)).into_owned()
    }

    /// Token ids → bytes, with llama.cpp's options: `remove_special` drops the BOS / EOS the
    /// tokenizer itself would add; `special` prints control tokens.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, special: bool) -> Vec<u8> {
        decode::detokenize(&self.vocab, ids, remove_special, special)
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.tokens.len()
    }

    pub fn kind(&self) -> VocabKind {
        self.vocab.kind
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.special.eos
    }

    /// All special-role ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.vocab.special
    }

    /// Whether encoding with `add_special` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.vocab.flags.add_bos
    }

    /// Whether encoding with `add_special` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.vocab.flags.add_eos
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.binary_search(&id).is_ok()
    }

    /// The end-of-generation ids, ascending.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.vocab.eog
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.token_to_id.get(text).copied()
    }

    /// The stored text of token `id` (byte-level spelling for BPE vocabularies).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_attr(&self, id: u32) -> TokenAttr {
        self.vocab
            .attrs
            .get(id as usize)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
