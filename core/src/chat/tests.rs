//! Renderings checked against llama.cpp (llama-server's /apply-template with the same
//! templates and conversations).

use super::*;
use crate::gguf::{Metadata, Value, ValueType};

/// A tiny byte-less vocabulary with DeepSeek's BOS/EOS texts; `add_bos` as given.
fn tokenizer(add_bos: bool) -> Tokenizer {
    let texts = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "a", "b"];
    let mut md = Metadata::new();
    md.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    md.set("tokenizer.ggml.pre", Value::String("deepseek-v3".into()));
    md.set(
        "tokenizer.ggml.tokens",
        Value::Array(
            ValueType::String,
            texts.iter().map(|t| Value::String(t.to_string())).collect(),
        ),
    );
    md.set(
        "tokenizer.ggml.token_type",
        Value::Array(
            ValueType::I32,
            [3, 3, 1, 1].iter().map(|&t| Value::I32(t)).collect(),
        ),
    );
    md.set(
        "tokenizer.ggml.merges",
        Value::Array(ValueType::String, vec![]),
    );
    md.set("tokenizer.ggml.bos_token_id", Value::U32(0));
    md.set("tokenizer.ggml.eos_token_id", Value::U32(1));
    md.set("tokenizer.ggml.add_bos_token", Value::Bool(add_bos));
    Tokenizer::from_metadata(&md).expect("tiny vocabulary loads")
}

fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "You are terse."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
        Message::new("system", "Second system."),
        Message::new("user", "  How are you?\n"),
    ]
}

/// The start of DeepSeek-V3's HF template, enough for detection (markers and `is_first_sp`).
const DS3_TEMPLATE: &str = "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{{bos_token}}{{ns.system_prompt}}{{'<｜User｜>' + message['content']}}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}";

#[test]
fn deepseek3_jinja_hoists_system_prompts_and_drops_bos_text() {
    let t = ChatTemplate::from_template_text(DS3_TEMPLATE, &tokenizer(true)).expect("detected");
    assert_eq!(t.kind(), TemplateKind::DeepSeek3);
    assert_eq!(
        t.render(&conversation(), true),
        "You are terse.\n\nSecond system.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>  How are you?\n<｜Assistant｜>"
    );
    // A tokenizer that does not add BOS leaves the template's BOS text in place.
    let t = ChatTemplate::from_template_text(DS3_TEMPLATE, &tokenizer(false)).expect("detected");
    assert!(t
        .render(&conversation(), false)
        .starts_with("<｜begin▁of▁sentence｜>You are terse."));
}

#[test]
fn deepseek3_jinja_tool_outputs() {
    let t = ChatTemplate::from_template_text(DS3_TEMPLATE, &tokenizer(true)).expect("detected");
    let conv = [
        Message::new("user", "weather?"),
        Message::new("tool", "sunny"),
        Message::new("tool", "22C"),
        Message::new("assistant", "It is sunny."),
        Message::new("user", "thanks"),
    ];
    assert_eq!(
        t.render(&conv, true),
        "<｜User｜>weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>22C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is sunny.<｜end▁of▁sentence｜><｜User｜>thanks<｜Assistant｜>"
    );
    // Ending on tool output closes the outputs and opens no assistant turn.
    assert_eq!(
        t.render(&conv[..2], true),
        "<｜User｜>weather?<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"
    );
}

#[test]
fn deepseek3_builtin_keeps_system_in_place() {
    let t = ChatTemplate::by_name("deepseek3").expect("known");
    assert_eq!(
        t.render(&conversation(), true),
        "You are terse.\n\n<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>Second system.\n\n<｜User｜>  How are you?\n<｜Assistant｜>"
    );
}

#[test]
fn deepseek_r1_strips_past_reasoning_and_opens_thinking() {
    let template = "{{bos_token}}{{ns.system_prompt}}'<｜User｜>'{% set content = content.split('</think>')[-1] %}'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'{{'<｜Assistant｜><think>\\n'}}";
    let t = ChatTemplate::from_template_text(template, &tokenizer(true)).expect("detected");
    let conv = [
        Message::new("system", "S1"),
        Message::new("system", "S2"),
        Message::new("user", "What is 2+2?"),
        Message::new("assistant", "<think>\nadd\n</think>\n\n4"),
        Message::new("user", "And 3+3?"),
    ];
    assert_eq!(
        t.render(&conv, true),
        "S2<｜User｜>What is 2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜><｜User｜>And 3+3?<｜Assistant｜><think>\n"
    );
}

#[test]
fn chatml_with_and_without_default_system() {
    let smollm2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    // The SmolLM2 GGUF stores the newlines inside the string literals as real newlines.
    let smollm2_gguf = smollm2.replace("\\n", "\n");
    let t = ChatTemplate::from_template_text(smollm2, &tokenizer(false)).expect("detected");
    assert_eq!(
        Some(&t),
        ChatTemplate::from_template_text(&smollm2_gguf, &tokenizer(false)).as_ref()
    );
    assert_eq!(t.kind(), TemplateKind::ChatMl);
    let conv = [
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
    ];
    assert_eq!(
        t.render(&conv, true),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&conversation()[..2], false),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
    let builtin = ChatTemplate::by_name("chatml").expect("known");
    assert_eq!(
        builtin.render(&conv, false),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    );
}

#[test]
fn llama3_trims_content() {
    let t = ChatTemplate::by_name("llama3").expect("known");
    assert_eq!(
        t.render(&[Message::new("system", " Be brief. "), Message::new("user", "\nHi\n")], true),
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn unknown_names_and_templates() {
    assert!(ChatTemplate::by_name("vicuna").is_err());
    assert_eq!(
        ChatTemplate::from_template_text("{{ messages }}", &tokenizer(true)),
        None
    );
}
