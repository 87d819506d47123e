//! Pre-tokenizers of byte-level BPE vocabularies: `tokenizer.ggml.pre` → split regexes.
//!
//! The regex lists and per-type flags are llama.cpp's (src/llama-vocab.cpp). Splitting applies
//! each regex in turn to every current segment; matches and the gaps between them both become
//! segments. Regexes that llama.cpp evaluates with hand-written loops use [`super::split_custom`],
//! the rest [`super::regex_split`].

use super::regex_split::{RegexTexts, SplitRegex};
use super::split_custom::{split_gpt2, split_llama3_like, Classified};
use super::unicode;
use crate::{Error, Result};
use std::ops::Range;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const DEEPSEEK_LLM_LETTERS: &str = "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";

/// The split regex lists, by llama.cpp pre-tokenizer type.
fn regexes_for(kind: PreKind) -> &'static [&'static str] {
    match kind {
        PreKind::Default => &[
            r"[\p{P}\$\+<=>\^~\|]+",
            GPT2,
            r"\p{N}+",
            "[0-9][0-9][0-9]",
        ],
        PreKind::Llama3 => &[LLAMA3],
        PreKind::DeepseekLlm => &[
            "[\r\n]",
            DEEPSEEK_LLM_LETTERS,
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
            "\\s+$",
            "[一-龥ࠀ-一가-퟿]+",
            r"\p{N}+",
        ],
        PreKind::Deepseek3 => &[
            r"\p{N}{1,3}",
            "[一-龥぀-ゟ゠-ヿ]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
        ],
        PreKind::DeepseekCoder => &[
            "[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            "[一-龥ࠀ-一가-퟿]+",
            r"\p{N}",
        ],
        PreKind::Falcon => &[
            r"[\p{P}\$\+<=>\^~\|`]+",
            GPT2,
            "[0-9][0-9][0-9]",
        ],
        PreKind::Starcoder => &[r"\p{N}", GPT2],
        PreKind::Gpt2 => &[GPT2],
        PreKind::Qwen2 => &[QWEN2],
        PreKind::Qwen35 => &[QWEN35],
    }
}

/// Pre-tokenizer families (several `pre` names share one).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    Default,
    Llama3,
    DeepseekLlm,
    Deepseek3,
    DeepseekCoder,
    Falcon,
    Starcoder,
    Gpt2,
    Qwen2,
    Qwen35,
}

/// What a `tokenizer.ggml.pre` value selects.
#[derive(Copy, Clone, Debug)]
pub(crate) struct PreSpec {
    pub kind: PreKind,
    /// Whether a word that is itself a token skips the merges.
    pub ignore_merges: bool,
    /// Whether detokenized text gets llama.cpp's English space clean-up.
    pub clean_spaces: bool,
    /// The default of `add_bos_token` when the key is absent.
    pub add_bos_default: bool,
    /// Whether the type has no BOS token by default.
    pub no_default_bos: bool,
}

/// Looks up a `tokenizer.ggml.pre` value (absent: "default").
pub(crate) fn pre_spec(name: Option<&str>) -> Result<PreSpec> {
    use PreKind::*;
    let spec = |kind, clean_spaces| PreSpec {
        kind,
        ignore_merges: false,
        clean_spaces,
        add_bos_default: false,
        no_default_bos: false,
    };
    let name = name.unwrap_or("default");
    Ok(match name {
        "default" => spec(Default, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreSpec {
            ignore_merges: true,
            add_bos_default: true,
            ..spec(Llama3, true)
        },
        "dbrx" | "smaug-bpe" => spec(Llama3, true),
        "chatglm-bpe" => PreSpec {
            no_default_bos: true,
            ..spec(Llama3, true)
        },
        "glm4" | "glm5" => PreSpec {
            no_default_bos: true,
            ignore_merges: true,
            ..spec(Llama3, true)
        },
        "deepseek-llm" => spec(DeepseekLlm, false),
        "deepseek-coder" => spec(DeepseekCoder, false),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => spec(Deepseek3, false),
        "falcon" => spec(Falcon, true),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            spec(Starcoder, true)
        }
        "command-r" | "smollm" => spec(Starcoder, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4" => {
            spec(Gpt2, true)
        }
        "trillion" | "granite-docling" => spec(Gpt2, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
        | "grok-2" => spec(Qwen2, false),
        "stablelm2" | "megrez" => spec(Qwen2, true),
        "qwen35" => spec(Qwen35, false),
        other => {
            return Err(Error::Unsupported(format!(
                "tokenizer.ggml.pre = {other:?}: pre-tokenizer type not supported"
            )))
        }
    })
}

/// How one regex of a list is evaluated.
enum Splitter {
    Gpt2,
    Llama3Like {
        digits_per_piece: usize,
        marks_are_letters: bool,
    },
    Regex(SplitRegex),
}

/// A compiled pre-tokenizer.
pub(crate) struct PreTokenizer {
    splitters: Vec<Splitter>,
}

impl PreTokenizer {
    pub(crate) fn new(kind: PreKind) -> Result<Self> {
        let splitters = regexes_for(kind)
            .iter()
            .map(|&pattern| {
                Ok(match pattern {
                    GPT2 => Splitter::Gpt2,
                    LLAMA3 => Splitter::Llama3Like {
                        digits_per_piece: 3,
                        marks_are_letters: false,
                    },
                    QWEN2 => Splitter::Llama3Like {
                        digits_per_piece: 1,
                        marks_are_letters: false,
                    },
                    QWEN35 => Splitter::Llama3Like {
                        digits_per_piece: 1,
                        marks_are_letters: true,
                    },
                    _ => Splitter::Regex(SplitRegex::new(pattern)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PreTokenizer { splitters })
    }

    /// Splits `text` into words (byte ranges of `text`, in order, covering all of it).
    pub(crate) fn split(&self, text: &str) -> Vec<Range<usize>> {
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let flags: Vec<u16> = cps.iter().map(|&c| unicode::flags(c)).collect();
        let classified = Classified {
            cps: &cps,
            flags: &flags,
        };
        let mut texts = RegexTexts::new();
        let mut segments = vec![0..cps.len()];
        if cps.is_empty() {
            segments.clear();
        }
        for splitter in &self.splitters {
            segments = match splitter {
                Splitter::Gpt2 => {
                    let mut out = Vec::with_capacity(segments.len() * 2);
                    for seg in &segments {
                        split_gpt2(&classified, seg.clone(), &mut out);
                    }
                    out
                }
                Splitter::Llama3Like {
                    digits_per_piece,
                    marks_are_letters,
                } => {
                    let mut out = Vec::with_capacity(segments.len() * 2);
                    for seg in &segments {
                        split_llama3_like(
                            &classified,
                            seg.clone(),
                            &mut out,
                            *digits_per_piece,
                            *marks_are_letters,
                        );
                    }
                    out
                }
                Splitter::Regex(re) => re.split(&cps, &flags, &mut texts, &segments),
            };
        }
        // Code point ranges → byte ranges.
        let mut byte_of_cp = Vec::with_capacity(cps.len() + 1);
        byte_of_cp.extend(text.char_indices().map(|(b, _)| b));
        byte_of_cp.push(text.len());
        segments
            .into_iter()
            .map(|r| byte_of_cp[r.start]..byte_of_cp[r.end])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &str, text: &str) -> Vec<String> {
        let spec = pre_spec(Some(pre)).expect("known pre");
        let p = PreTokenizer::new(spec.kind).expect("compiles");
        p.split(text)
            .into_iter()
            .map(|r| text[r].to_owned())
            .collect()
    }

    #[test]
    fn deepseek3_splits_digits_cjk_and_words() {
        assert_eq!(
            words("deepseek-v3", "Hello, 世界! 1234567 ab"),
            ["Hello", ",", " ", "世界", "!", " ", "123", "456", "7", " ab"]
        );
    }

    #[test]
    fn gpt2_keeps_trailing_space_run_apart() {
        assert_eq!(words("gpt-2", "a   b"), ["a", "  ", " b"]);
        assert_eq!(words("gpt-2", "I'm ok "), ["I", "'m", " ok", " "]);
    }

    #[test]
    fn llama3_groups_three_digits() {
        assert_eq!(
            words("llama-bpe", "x1234 'RE\n\n y"),
            ["x", "123", "4", " '", "RE", "\n\n", " y"]
        );
    }

    #[test]
    fn unknown_pre_is_an_error_naming_the_key() {
        let err = pre_spec(Some("no-such-pre")).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("tokenizer.ggml.pre"));
    }
}
