//! Unit tests on small hand-built vocabularies (GGUF metadata built in memory).

use super::unicode::BYTE_TO_CHAR;
use super::*;
use crate::gguf::{Metadata, Value, ValueType};

fn strings(items: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        items.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

fn ints(items: &[i32]) -> Value {
    Value::Array(
        ValueType::I32,
        items.iter().map(|&v| Value::I32(v)).collect(),
    )
}

const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// A byte-level BPE vocabulary: the 256 byte characters, a few merges, special tokens.
/// Returns the metadata and the id of each extra token by text.
fn bpe_metadata(extra: &[(&str, i32)], merges: &[&str]) -> Metadata {
    let mut texts: Vec<String> = BYTE_TO_CHAR.iter().map(|c| c.to_string()).collect();
    let mut types = vec![NORMAL; 256];
    for (text, ty) in extra {
        texts.push(text.to_string());
        types.push(*ty);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut md = Metadata::new();
    md.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    md.set("tokenizer.ggml.pre", Value::String("deepseek-v3".into()));
    md.set("tokenizer.ggml.tokens", strings(&refs));
    md.set("tokenizer.ggml.token_type", ints(&types));
    md.set("tokenizer.ggml.merges", strings(merges));
    md
}

fn demo_tokenizer() -> Tokenizer {
    let mut md = bpe_metadata(
        &[
            ("he", NORMAL),               // 256
            ("ll", NORMAL),               // 257
            ("hell", NORMAL),             // 258
            ("hello", NORMAL),            // 259
            ("<|bos|>", CONTROL),         // 260
            ("<|eos|>", CONTROL),         // 261
            ("<tool>", USER_DEFINED),     // 262
            ("<tool>call", USER_DEFINED), // 263
            ("<|im_end|>", NORMAL),       // 264: end of turn by its text
        ],
        &["h e", "l l", "he ll", "hell o"],
    );
    md.set("tokenizer.ggml.bos_token_id", Value::U32(260));
    md.set("tokenizer.ggml.eos_token_id", Value::U32(261));
    md.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    Tokenizer::from_metadata(&md).expect("demo vocabulary loads")
}

/// In these vocabularies token `b` is the byte-level character of byte `b`.
fn byte_id(b: u8) -> u32 {
    u32::from(b)
}

#[test]
fn bpe_merges_and_bos() {
    let tok = demo_tokenizer();
    assert_eq!(tok.encode("hello", false, false), [259]);
    assert_eq!(tok.encode("hello", true, false), [260, 259]);
    assert_eq!(tok.encode("", true, false), [260]);
    assert_eq!(tok.encode(" hell", false, false), [byte_id(b' '), 258]);
    assert_eq!(tok.decode(&[260, 259], false), "hello");
    assert_eq!(tok.decode(&[260, 259], true), "<|bos|>hello");
}

#[test]
fn special_tokens_in_text() {
    let tok = demo_tokenizer();
    // Control tokens only with parse_special.
    assert_eq!(tok.encode("<|eos|>", false, true), [261]);
    assert_ne!(tok.encode("<|eos|>", false, false), [261]);
    // User-defined tokens always, longest text first.
    assert_eq!(tok.encode("<tool>call<tool>", false, false), [263, 262]);
    assert_eq!(
        tok.encode("hello<tool>hello", false, false),
        [259, 262, 259]
    );
    // Control and user-defined pieces print as their text; control only with `special`.
    assert_eq!(tok.token_to_piece(262, false), b"<tool>");
    assert_eq!(tok.token_to_piece(261, false), b"");
    assert_eq!(tok.token_to_piece(261, true), b"<|eos|>");
    assert_eq!(tok.token_id("<tool>call"), Some(263));
}

#[test]
fn end_of_generation_set() {
    let tok = demo_tokenizer();
    assert!(tok.is_eog(261), "EOS ends generation");
    assert!(tok.is_eog(264), "<|im_end|> ends generation by its text");
    assert!(!tok.is_eog(259));
    assert_eq!(tok.special_tokens().eot, Some(264));
    // A token detected by its text is forced to CONTROL.
    assert!(tok.token_attr(264).intersects(TokenAttr::CONTROL));
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let tok = demo_tokenizer();
    let emoji = "😀"; // four UTF-8 bytes, one byte token each
    let ids = tok.encode(&format!("hi{emoji}!"), false, false);
    let mut stream = StreamDecoder::new(false);
    let pieces: Vec<String> = ids.iter().map(|&id| stream.push(&tok, id)).collect();
    assert_eq!(pieces.concat(), format!("hi{emoji}!"));
    // The emoji appears once, whole, when its last byte arrives.
    assert!(pieces
        .iter()
        .any(|p| p == emoji || p == &format!("{emoji}!")));
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
    assert_eq!(stream.finish(), "");

    // A cut-off character at the end comes out as U+FFFD on finish.
    let mut stream = StreamDecoder::new(false);
    assert_eq!(stream.push(&tok, byte_id(0xF0)), "");
    assert_eq!(stream.push(&tok, byte_id(0x9F)), "");
    assert_eq!(stream.finish(), "\u{FFFD}");
    // A byte that can never start a character is replaced at once.
    let mut stream = StreamDecoder::new(false);
    assert_eq!(stream.push(&tok, byte_id(0xFF)), "\u{FFFD}");
}

#[test]
fn load_errors_name_the_key() {
    let full = bpe_metadata(&[], &[]);
    let message = |md: &Metadata| match Tokenizer::from_metadata(md) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    let mut md = full.clone();
    md.remove("tokenizer.ggml.tokens");
    assert!(message(&md).contains("tokenizer.ggml.tokens"));
    let mut md = full.clone();
    md.remove("tokenizer.ggml.merges");
    assert!(message(&md).contains("tokenizer.ggml.merges"));
    let mut md = full.clone();
    md.set(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::U8, vec![]),
    );
    assert!(message(&md).contains("tokenizer.ggml.token_type"));
    let mut md = full.clone();
    md.set("tokenizer.ggml.token_type", ints(&[1, 1]));
    assert!(message(&md).contains("tokenizer.ggml.token_type"));
    let mut md = full.clone();
    md.set("tokenizer.ggml.model", Value::String("t5".into()));
    assert!(message(&md).contains("tokenizer.ggml.model"));
    let mut md = full.clone();
    md.set("tokenizer.ggml.bos_token_id", Value::I32(1));
    assert!(message(&md).contains("tokenizer.ggml.bos_token_id"));
    let mut md = full.clone();
    md.set("tokenizer.ggml.tokens", strings(&["a", "b", "a"]));
    md.remove("tokenizer.ggml.token_type");
    assert!(message(&md).contains("duplicates"));
    // Without an in-range BOS (the BPE default is id 11), add_bos_token cannot be honoured.
    let mut md = full;
    md.set("tokenizer.ggml.tokens", strings(&["a", "b"]));
    md.remove("tokenizer.ggml.token_type");
    md.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    assert!(message(&md).contains("add_bos_token"));
}

/// A SentencePiece vocabulary with byte fallback.
fn spm_tokenizer(name: &str) -> Tokenizer {
    let mut texts = vec!["<unk>", "<s>", "</s>"];
    let mut types = vec![2, CONTROL, CONTROL];
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    for b in &bytes {
        texts.push(b);
        types.push(6);
    }
    let words = ["▁", "h", "i", "▁h", "▁hi", "<|end|>"];
    for w in words {
        texts.push(w);
        types.push(if w == "<|end|>" { CONTROL } else { NORMAL });
    }
    let scores: Vec<Value> = (0..texts.len())
        .map(|i| {
            Value::F32(if texts[i] == "▁hi" {
                0.0
            } else {
                -(i as f32)
            })
        })
        .collect();
    let mut md = Metadata::new();
    md.set("general.name", Value::String(name.into()));
    md.set("tokenizer.ggml.model", Value::String("llama".into()));
    md.set("tokenizer.ggml.tokens", strings(&texts));
    md.set("tokenizer.ggml.token_type", ints(&types));
    md.set(
        "tokenizer.ggml.scores",
        Value::Array(ValueType::F32, scores),
    );
    Tokenizer::from_metadata(&md).expect("spm vocabulary loads")
}

#[test]
fn sentencepiece_prefix_space_and_byte_fallback() {
    let tok = spm_tokenizer("tiny");
    let hi = tok.token_id("▁hi").unwrap_or_default();
    let space = tok.token_id("▁").unwrap_or_default();
    assert_eq!(tok.encode("hi", true, false), [1, hi]);
    // 'é' is not a token: its two UTF-8 bytes come out as byte tokens.
    assert_eq!(tok.encode("é", false, false), [space, 3 + 0xC3, 3 + 0xA9]);
    // The leading space added at encoding is removed at decoding.
    assert_eq!(tok.decode(&tok.encode("hi é", false, false), false), "hi é");
    // After a special token the next fragment gets the prefix space again.
    let end = tok.token_id("<|end|>").unwrap_or_default();
    assert_eq!(tok.encode("<|end|>hi", false, true), [end, hi]);
}

#[test]
fn phi3_special_tokens_swallow_following_whitespace() {
    let tok = spm_tokenizer("Phi3");
    let hi = tok.token_id("▁hi").unwrap_or_default();
    let end = tok.token_id("<|end|>").unwrap_or_default();
    assert_eq!(tok.encode("<|end|>  \nhi", false, true), [end, hi]);
    let plain = spm_tokenizer("other");
    assert_ne!(plain.encode("<|end|>  \nhi", false, true), [end, hi]);
}
