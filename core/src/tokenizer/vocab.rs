//! Vocabulary loading from GGUF metadata: tokens, attributes, special ids, flags.
//!
//! Follows llama.cpp's `llama_vocab::impl::load`: per-model defaults, then the metadata keys
//! (read with exact types), then the text-based detection of end-of-turn / fill-in-the-middle
//! tokens and of the end-of-generation set. Errors name the metadata key at fault.

use super::pretokenize::{pre_spec, PreSpec};
use super::TokenAttr;
use crate::gguf::{Metadata, Value, ValueType};
use crate::{Error, Result};
use std::collections::HashMap;

pub(crate) const KEY_MODEL: &str = "tokenizer.ggml.model";
pub(crate) const KEY_PRE: &str = "tokenizer.ggml.pre";
pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub(crate) const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub(crate) const KEY_SCORES: &str = "tokenizer.ggml.scores";
pub(crate) const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// Which tokenization algorithm the vocabulary uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE (`gpt2`).
    Bpe,
    /// SentencePiece-style BPE with byte fallback (`llama`).
    Spm,
}

/// Ids of the tokens with a special role (`None`: the vocabulary has none).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Tokenizer behaviour switches.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Flags {
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    pub clean_spaces: bool,
    pub ignore_merges: bool,
}

/// A loaded vocabulary.
pub(crate) struct Vocab {
    pub kind: VocabKind,
    pub pre: Option<PreSpec>,
    pub tokens: Vec<String>,
    pub attrs: Vec<TokenAttr>,
    pub scores: Vec<f32>,
    pub token_to_id: HashMap<String, u32>,
    pub special: SpecialTokens,
    /// End-of-generation ids, ascending.
    pub eog: Vec<u32>,
    pub flags: Flags,
    /// CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first (ties: lower id first).
    pub special_cache: Vec<u32>,
}

fn wrong_type(key: &str, want: &str, got: &Value) -> Error {
    Error::model(format!(
        "metadata key {key} has type {}, expected {want}",
        got.value_type().name()
    ))
}

/// An array value of element type `want`, `None` if the key is absent.
fn array<'m>(md: &'m Metadata, key: &str, want: ValueType) -> Result<Option<&'m [Value]>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(t, items)) if *t == want => Ok(Some(items)),
        Some(v) => Err(wrong_type(key, &format!("array of {}", want.name()), v)),
    }
}

fn required_str_array<'m>(md: &'m Metadata, key: &str) -> Result<Vec<&'m str>> {
    let items = array(md, key, ValueType::String)?
        .ok_or_else(|| Error::model(format!("metadata key {key} is missing")))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| Error::model(format!("metadata key {key}: non-string element")))
        })
        .collect()
}

/// Texts llama.cpp takes as end-of-turn / fill-in-the-middle markers when no key names them.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that always end generation.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Vocab {
    pub(crate) fn load(md: &Metadata) -> Result<Self> {
        let model = md
            .get_str(KEY_MODEL)?
            .ok_or_else(|| Error::model(format!("metadata key {KEY_MODEL} is missing")))?;
        let pre_name = md.get_str(KEY_PRE)?;
        let mut special = SpecialTokens::default();
        let (kind, pre, mut flags) = match model {
            "gpt2" => {
                let pre = pre_spec(pre_name)?;
                special.bos = (!pre.no_default_bos).then_some(11);
                special.eos = Some(11);
                let flags = Flags {
                    add_bos: pre.add_bos_default,
                    add_eos: false,
                    add_space_prefix: false,
                    clean_spaces: pre.clean_spaces,
                    ignore_merges: pre.ignore_merges,
                };
                (VocabKind::Bpe, Some(pre), flags)
            }
            "llama" => {
                special.bos = Some(1);
                special.eos = Some(2);
                special.unk = Some(0);
                let flags = Flags {
                    add_bos: true,
                    add_eos: false,
                    add_space_prefix: true,
                    clean_spaces: false,
                    ignore_merges: false,
                };
                (VocabKind::Spm, None, flags)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "{KEY_MODEL} = {other:?}: only byte-level BPE (gpt2) and SentencePiece (llama) vocabularies are supported"
                )))
            }
        };
        if let Some(v) = md.get_bool("tokenizer.ggml.add_space_prefix")? {
            flags.add_space_prefix = v;
        }

        let texts = required_str_array(md, KEY_TOKENS)?;
        let n = texts.len();
        let n_u32 = u32::try_from(n)
            .map_err(|_| Error::model(format!("metadata key {KEY_TOKENS}: too many tokens")))?;
        let scores = read_scores(md, n)?;
        let types = read_token_types(md, n)?;

        let mut tokens = Vec::with_capacity(n);
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, text) in texts.iter().enumerate() {
            let text = if text.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                (*text).to_owned()
            };
            if token_to_id.insert(text.clone(), i as u32).is_some() {
                return Err(Error::model(format!(
                    "metadata key {KEY_TOKENS}: token {i} ({text:?}) duplicates an earlier token"
                )));
            }
            tokens.push(text);
        }
        let attrs: Vec<TokenAttr> = match &types {
            Some(types) => types.iter().map(|&t| TokenAttr::from_type(t)).collect(),
            None => vec![TokenAttr::NORMAL; n],
        };

        let mut vocab = Vocab {
            kind,
            pre,
            tokens,
            attrs,
            scores,
            token_to_id,
            special,
            eog: Vec::new(),
            flags,
            special_cache: Vec::new(),
        };
        vocab.read_special_ids(md, n_u32)?;
        if let Some(v) = md.get_bool("tokenizer.ggml.add_bos_token")? {
            vocab.flags.add_bos = v;
        }
        if let Some(v) = md.get_bool("tokenizer.ggml.add_eos_token")? {
            vocab.flags.add_eos = v;
        }
        if vocab.flags.add_bos && vocab.special.bos.is_none() {
            return Err(Error::model(
                "tokenizer.ggml.add_bos_token is set but the vocabulary has no BOS token",
            ));
        }
        if vocab.flags.add_eos && vocab.special.eos.is_none() {
            return Err(Error::model(
                "tokenizer.ggml.add_eos_token is set but the vocabulary has no EOS token",
            ));
        }
        vocab.detect_special_by_text();
        vocab.build_eog_set();
        vocab.build_special_cache();
        vocab.apply_model_specific_attrs(md)?;
        Ok(vocab)
    }

    /// Reads the `*_token_id` keys over the per-model defaults (llama.cpp's order and rules).
    fn read_special_ids(&mut self, md: &Metadata, n: u32) -> Result<()> {
        type Slot = fn(&mut SpecialTokens) -> &mut Option<u32>;
        let keys: [(&str, Slot); 17] = [
            ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
            ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
            ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
            ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
            ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
            ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
            ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
            ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
            ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
            // Deprecated spellings, read after the current ones (they win when both exist).
            ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
        ];
        for (key, slot_of) in keys {
            let slot = slot_of(&mut self.special);
            if slot.is_some_and(|id| id >= n) {
                *slot = None; // a default outside the vocabulary is disabled
            }
            // An id outside the vocabulary is ignored (llama.cpp warns and keeps the default).
            if let Some(id) = md.get_u32(key)?.filter(|&id| id < n) {
                *slot = Some(id);
            }
        }
        Ok(())
    }

    fn force_control(&mut self, id: u32) {
        self.attrs[id as usize] |= TokenAttr::CONTROL;
    }

    /// Fills EOT/EOM/FIM ids from well-known token texts when no key set them.
    ///
    /// llama.cpp scans a hash map, so when several candidates exist its pick is arbitrary;
    /// we take the lowest id. The end-of-generation set does not depend on the pick.
    fn detect_special_by_text(&mut self) {
        for id in 0..self.tokens.len() as u32 {
            let text = self.tokens[id as usize].as_str();
            let slots: [(&[&str], Option<u32>); 8] = [
                (EOT_TEXTS, self.special.eot),
                (EOM_TEXTS, self.special.eom),
                (FIM_PRE_TEXTS, self.special.fim_pre),
                (FIM_SUF_TEXTS, self.special.fim_suf),
                (FIM_MID_TEXTS, self.special.fim_mid),
                (FIM_PAD_TEXTS, self.special.fim_pad),
                (FIM_REP_TEXTS, self.special.fim_rep),
                (FIM_SEP_TEXTS, self.special.fim_sep),
            ];
            let mut hits = [false; 8];
            for (hit, (texts, current)) in hits.iter_mut().zip(slots) {
                *hit = current.is_none() && texts.contains(&text);
            }
            let s = &mut self.special;
            let targets = [
                &mut s.eot,
                &mut s.eom,
                &mut s.fim_pre,
                &mut s.fim_suf,
                &mut s.fim_mid,
                &mut s.fim_pad,
                &mut s.fim_rep,
                &mut s.fim_sep,
            ];
            let mut any = false;
            for (hit, slot) in hits.iter().zip(targets) {
                if *hit {
                    *slot = Some(id);
                    any = true;
                }
            }
            if any {
                self.force_control(id);
            }
        }
        // Control tokens whose text says "unused" are marked unused.
        for (attr, text) in self.attrs.iter_mut().zip(&self.tokens) {
            if attr.intersects(TokenAttr::CONTROL) && text.contains("unused") {
                *attr |= TokenAttr::UNUSED;
            }
        }
    }

    fn build_eog_set(&mut self) {
        let mut eog: Vec<u32> = [
            self.special.fim_pad,
            self.special.fim_rep,
            self.special.fim_sep,
        ]
        .into_iter()
        .flatten()
        .collect();
        for id in 0..self.tokens.len() as u32 {
            if EOG_TEXTS.contains(&self.tokens[id as usize].as_str()) {
                eog.push(id);
                self.force_control(id);
            }
        }
        // gpt-oss channel markers are always rendered.
        for id in 0..self.tokens.len() {
            if matches!(
                self.tokens[id].as_str(),
                "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
            ) {
                self.attrs[id] = TokenAttr::USER_DEFINED;
            }
        }
        eog.extend(
            [self.special.eos, self.special.eot, self.special.eom]
                .into_iter()
                .flatten(),
        );
        eog.sort_unstable();
        eog.dedup();
        let find = |eog: &[u32], t: &str| {
            eog.iter()
                .copied()
                .find(|&id| self.tokens[id as usize] == t)
        };
        // Harmony / solar-open vocabularies: "<|end|>" ends a message, not the generation.
        if let Some(end_id) = find(&eog, "<|end|>") {
            let has_call = find(&eog, "<|call|>").is_some() || find(&eog, "<|calls|>").is_some();
            let has_return = find(&eog, "<|return|>").is_some();
            let has_flush = find(&eog, "<|flush|>").is_some();
            if (has_return && has_call) || (has_call && has_flush) {
                eog.retain(|&id| id != end_id);
                self.attrs[end_id as usize] = TokenAttr::USER_DEFINED;
            }
        }
        // Gemma 4 / PLaMo: "</s>" is an ordinary token there.
        let has_normal_s_marker =
            find(&eog, "<|tool_response>").is_some() || find(&eog, "<|plamo:eos|>").is_some();
        if let Some(s_id) = find(&eog, "</s>") {
            if has_normal_s_marker {
                eog.retain(|&id| id != s_id);
                self.attrs[s_id as usize] = TokenAttr::NORMAL;
            }
        }
        self.eog = eog;
    }

    fn build_special_cache(&mut self) {
        let matchable = TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN;
        let mut cache: Vec<u32> = (0..self.tokens.len() as u32)
            .filter(|&id| self.attrs[id as usize].intersects(matchable))
            .collect();
        cache.sort_by_key(|&id| std::cmp::Reverse(self.tokens[id as usize].len()));
        self.special_cache = cache;
    }

    /// Whitespace-stripping attributes llama.cpp sets by model name.
    fn apply_model_specific_attrs(&mut self, md: &Metadata) -> Result<()> {
        let name = md.get_str("general.name")?.unwrap_or("").to_lowercase();
        let pre = md.get_str(KEY_PRE)?.unwrap_or("");
        let arch = md.get_str("general.architecture")?.unwrap_or("");
        let set = |vocab: &mut Vocab, text: &str, attr: TokenAttr, on: bool| {
            if let Some(&id) = vocab.token_to_id.get(text) {
                let a = &mut vocab.attrs[id as usize];
                *a = if on { *a | attr } else { a.without(attr) };
            }
        };
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
            .iter()
            .any(|p| pre.contains(p))
            || ["nomic-bert-moe", "jina-bert-v3"]
                .iter()
                .any(|a| arch.contains(a))
        {
            set(self, "<mask>", TokenAttr::LSTRIP, true);
        } else if name.contains("phi-3") || name.contains("phi3") {
            for id in self.special_cache.clone() {
                self.attrs[id as usize] |= TokenAttr::RSTRIP;
            }
            set(self, "</s>", TokenAttr::RSTRIP, true);
            for text in ["<unk>", "<s>", "<|endoftext|>"] {
                set(self, text, TokenAttr::RSTRIP, false);
            }
        } else if name.contains("modern-bert") {
            set(self, "[MASK]", TokenAttr::LSTRIP, true);
        }
        Ok(())
    }

    /// Token for a byte in SentencePiece vocabularies: `<0xXX>`, else the one-byte string.
    pub(crate) fn spm_byte_tokens(&self) -> [Option<u32>; 256] {
        let mut table = [None; 256];
        for (b, slot) in table.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = self.token_to_id.get(&hex).copied().or_else(|| {
                let byte = u8::try_from(b).ok().filter(u8::is_ascii)?;
                self.token_to_id.get(&(byte as char).to_string()).copied()
            });
        }
        table
    }
}

fn read_scores(md: &Metadata, n: usize) -> Result<Vec<f32>> {
    let scores: Vec<f32> = match md.get(KEY_SCORES) {
        None => return Ok(vec![0.0; n]),
        Some(Value::Array(ValueType::F32, items)) => items
            .iter()
            .map(|v| if let Value::F32(x) = v { *x } else { 0.0 })
            .collect(),
        Some(Value::Array(ValueType::I32, items)) => items
            .iter()
            .map(|v| {
                if let Value::I32(x) = v {
                    *x as f32
                } else {
                    0.0
                }
            })
            .collect(),
        Some(v) => return Err(wrong_type(KEY_SCORES, "array of float32 or int32", v)),
    };
    if scores.len() < n {
        return Err(Error::model(format!(
            "metadata key {KEY_SCORES} has {} entries for {n} tokens",
            scores.len()
        )));
    }
    Ok(scores)
}

fn read_token_types(md: &Metadata, n: usize) -> Result<Option<Vec<i32>>> {
    let Some(items) = array(md, KEY_TOKEN_TYPE, ValueType::I32)? else {
        return Ok(None);
    };
    if items.len() < n {
        return Err(Error::model(format!(
            "metadata key {KEY_TOKEN_TYPE} has {} entries for {n} tokens",
            items.len()
        )));
    }
    Ok(Some(
        items
            .iter()
            .map(|v| if let Value::I32(t) = v { *t } else { 0 })
            .collect(),
    ))
}

/// The merge strings of a BPE vocabulary (required).
pub(crate) fn read_merges(md: &Metadata) -> Result<Vec<&str>> {
    required_str_array(md, KEY_MERGES)
}
