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

// Letter ranges of the deepseek-llm pre-tokenizer, escaped: several of these code points
// (e.g. U+1F7D) change under Unicode normalization, which editors may apply to literals.
const DEEPSEEK_LLM_LETTERS: &str =
    "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\
    \u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\
    \u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}\
    -\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}\
    -\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}\
    -\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\
    \u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}\
    -\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}\
    -\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\
    \u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\
    \u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\
    \u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}\
    -\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}\
    -\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\
    \u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+";

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
        let mut segments: Vec<Range<usize>> = Vec::new();
        if !cps.is_empty() {
            segments.push(0..cps.len());
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
