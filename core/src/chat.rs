//! Chat templates: a conversation → the prompt text the model was trained on.
//!
//! llama.cpp's tools render a GGUF's `tokenizer.chat_template` (a Hugging Face Jinja template)
//! with their own Jinja engine, then drop a leading BOS text when the tokenizer adds BOS itself.
//! sluice has no Jinja engine: it recognises the template families it supports from the
//! template text and renders them the same way ([`ChatTemplate::detect`]). The names accepted
//! by `--chat-template` select llama.cpp's built-in renderings instead ([`ChatTemplate::by_name`]),
//! which differ in details (the built-in `deepseek3` keeps system messages in place and ends
//! each with a blank line; the Jinja one hoists them to the front).

use crate::gguf::Metadata;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The template families sluice renders.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    /// DeepSeek-V3 / R1: `<｜User｜>…<｜Assistant｜>…<｜end▁of▁sentence｜>`.
    DeepSeek3,
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen, ...).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
}

/// How DeepSeek templates treat system messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SystemPlacement {
    /// All system contents joined with a blank line, before everything else (V3/R1 Jinja).
    HoistJoined,
    /// Only the last system message, before everything else (R1-Distill Jinja).
    HoistLast,
    /// In place, each followed by a blank line (llama.cpp's built-in `deepseek3`).
    InPlace,
}

/// A chat template ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    kind: TemplateKind,
    /// Text the rendering starts with: the BOS token's text when the template writes it and
    /// the tokenizer does not add BOS itself; empty otherwise.
    bos_text: String,
    system: SystemPlacement,
    /// DeepSeek-R1: drop everything up to the last `</think>` of earlier assistant turns.
    strip_past_reasoning: bool,
    /// Appended after the generation prompt (`<think>\n` for DeepSeek-R1).
    generation_suffix: String,
    /// System prompt the template inserts when the conversation starts without one.
    default_system: Option<String>,
}

/// Names accepted by [`ChatTemplate::by_name`].
pub const TEMPLATE_NAMES: [&str; 3] = ["deepseek3", "chatml", "llama3"];

const DS_USER: &str = "<｜User｜>";
const DS_ASSISTANT: &str = "<｜Assistant｜>";
const DS_EOS: &str = "<｜end▁of▁sentence｜>";
const DS_OUTPUTS_BEGIN: &str = "<｜tool▁outputs▁begin｜>";
const DS_OUTPUTS_END: &str = "<｜tool▁outputs▁end｜>";
const DS_OUTPUT_BEGIN: &str = "<｜tool▁output▁begin｜>";
const DS_OUTPUT_END: &str = "<｜tool▁output▁end｜>";

impl ChatTemplate {
    fn plain(kind: TemplateKind) -> Self {
        ChatTemplate {
            kind,
            bos_text: String::new(),
            system: SystemPlacement::InPlace,
            strip_past_reasoning: false,
            generation_suffix: String::new(),
            default_system: None,
        }
    }

    /// llama.cpp's built-in template `name` (see [`TEMPLATE_NAMES`]).
    pub fn by_name(name: &str) -> Result<Self> {
        Ok(match name {
            "deepseek3" => Self::plain(TemplateKind::DeepSeek3),
            "chatml" => Self::plain(TemplateKind::ChatMl),
            "llama3" => Self::plain(TemplateKind::Llama3),
            other => {
                return Err(Error::Invalid(format!(
                    "unknown chat template {other:?} (known: {})",
                    TEMPLATE_NAMES.join(", ")
                )))
            }
        })
    }

    /// The template of a model: `tokenizer.chat_template`, if it is of a family sluice renders.
    /// `Ok(None)`: no template, or one sluice does not recognise.
    pub fn detect(md: &Metadata, tokenizer: &Tokenizer) -> Result<Option<Self>> {
        Ok(md
            .get_str("tokenizer.chat_template")?
            .and_then(|t| Self::from_template_text(t, tokenizer)))
    }

    /// Recognises a Jinja template by its text (the tests llama.cpp uses, in its order).
    pub fn from_template_text(template: &str, tokenizer: &Tokenizer) -> Option<Self> {
        let has = |s: &str| template.contains(s);
        // The BOS text the template writes, unless the tokenizer adds BOS anyway.
        let bos_text = match tokenizer.bos() {
            Some(bos) if !tokenizer.add_bos() && has("bos_token") => {
                String::from_utf8_lossy(&tokenizer.token_to_piece(bos, true)).into_owned()
            }
            _ => String::new(),
        };
        if has("<|im_start|>") {
            if has("<|im_sep|>") || has("<end_of_utterance>") {
                return None; // Phi-4 / SmolVLM variants
            }
            return Some(ChatTemplate {
                default_system: chatml_default_system(template),
                ..Self::plain(TemplateKind::ChatMl)
            });
        }
        if has("<|start_header_id|>") && has("<|end_header_id|>") {
            return Some(ChatTemplate {
                bos_text,
                ..Self::plain(TemplateKind::Llama3)
            });
        }
        if has(DS_ASSISTANT) && has(DS_USER) && has(DS_EOS) {
            let system = if has("is_first_sp") {
                SystemPlacement::HoistJoined
            } else {
                SystemPlacement::HoistLast
            };
            return Some(ChatTemplate {
                bos_text,
                system,
                strip_past_reasoning: has("split('</think>')"),
                generation_suffix: if has("'<｜Assistant｜><think>\\n'") {
                    "<think>\n".to_owned()
                } else {
                    String::new()
                },
                ..Self::plain(TemplateKind::DeepSeek3)
            });
        }
        None
    }

    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// Renders the conversation; `add_generation_prompt` opens an assistant turn at the end.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        match self.kind {
            TemplateKind::DeepSeek3 => {
                self.render_deepseek(messages, add_generation_prompt, &mut out)
            }
            TemplateKind::ChatMl => {
                let starts_with_system = messages.first().is_some_and(|m| m.role == "system");
                if let (Some(system), false, false) = (
                    &self.default_system,
                    starts_with_system,
                    messages.is_empty(),
                ) {
                    out.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
                }
                for m in messages {
                    out.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        m.role, m.content
                    ));
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            TemplateKind::Llama3 => {
                if !messages.is_empty() {
                    out.push_str(&self.bos_text);
                }
                for m in messages {
                    out.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        trim_ascii_space(&m.content)
                    ));
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
        }
        out
    }

    fn render_deepseek(&self, messages: &[Message], add_generation_prompt: bool, out: &mut String) {
        out.push_str(&self.bos_text);
        let mut systems = messages.iter().filter(|m| m.role == "system");
        match self.system {
            SystemPlacement::HoistJoined => out.push_str(
                &systems
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
            SystemPlacement::HoistLast => {
                out.push_str(systems.next_back().map_or("", |m| &m.content))
            }
            SystemPlacement::InPlace => {}
        }
        let mut in_tool_outputs = false;
        let mut first_output = true;
        for m in messages {
            match m.role.as_str() {
                "system" if self.system == SystemPlacement::InPlace => {
                    out.push_str(&m.content);
                    out.push_str("\n\n");
                }
                "user" => {
                    in_tool_outputs = false;
                    out.push_str(DS_USER);
                    out.push_str(&m.content);
                }
                "assistant" if in_tool_outputs => {
                    in_tool_outputs = false;
                    out.push_str(DS_OUTPUTS_END);
                    out.push_str(&m.content);
                    out.push_str(DS_EOS);
                }
                "assistant" => {
                    let content =
                        match (self.strip_past_reasoning, m.content.rsplit_once("</think>")) {
                            (true, Some((_, answer))) => answer,
                            _ => m.content.as_str(),
                        };
                    out.push_str(DS_ASSISTANT);
                    out.push_str(content);
                    out.push_str(DS_EOS);
                }
                "tool" if self.system != SystemPlacement::InPlace => {
                    in_tool_outputs = true;
                    if first_output {
                        out.push_str(DS_OUTPUTS_BEGIN);
                        first_output = false;
                    } else {
                        out.push('\n');
                    }
                    out.push_str(DS_OUTPUT_BEGIN);
                    out.push_str(&m.content);
                    out.push_str(DS_OUTPUT_END);
                }
                _ => {}
            }
        }
        if in_tool_outputs {
            out.push_str(DS_OUTPUTS_END);
        } else if add_generation_prompt {
            out.push_str(DS_ASSISTANT);
            out.push_str(&self.generation_suffix);
        }
    }
}

/// Trims the whitespace C's `isspace` knows, as llama.cpp's built-in templates do.
fn trim_ascii_space(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r'))
}

/// The system prompt a ChatML template inserts when the first message is not a system message
/// (SmolLM2, Qwen2.5): the string literal `'<|im_start|>system\n…<|im_end|>…'` in a branch
/// taken when `messages[0]['role'] != 'system'`.
fn chatml_default_system(template: &str) -> Option<String> {
    if !template.contains("!= 'system'") && !template.contains("!= \"system\"") {
        return None;
    }
    // The newline after the role is written either as an escape or as a real newline.
    let marker = "<|im_start|>system";
    let after = &template[template.find(marker)? + marker.len()..];
    let rest = after
        .strip_prefix("\\n")
        .or_else(|| after.strip_prefix('\n'))?;
    let literal = &rest[..rest.find("<|im_end|>")?];
    if literal.contains(['{', '}', '\'', '"']) {
        return None; // not a plain literal (an expression is spliced in)
    }
    Some(literal.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests;
