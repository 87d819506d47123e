//! Chat templates (placeholder until the template module lands: DeepSeek-V3 only).

use crate::gguf::Metadata;
use crate::{Error, Result};

/// One chat message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A chat template.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatTemplate {
    DeepSeek3,
}

impl ChatTemplate {
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "deepseek3" => Ok(ChatTemplate::DeepSeek3),
            other => Err(Error::Invalid(format!("unknown chat template {other}"))),
        }
    }

    pub fn detect(md: &Metadata) -> Result<Option<Self>> {
        let t = md.get_str("tokenizer.chat_template")?.unwrap_or("");
        Ok((t.contains("<｜Assistant｜>") && t.contains("<｜User｜>"))
            .then_some(ChatTemplate::DeepSeek3))
    }

    pub fn render(&self, msgs: &[Message], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        let system: Vec<&str> = msgs
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
            .collect();
        out.push_str(&system.join("\n\n"));
        for m in msgs.iter().filter(|m| m.role != "system") {
            match m.role.as_str() {
                "user" => out.push_str(&format!("<｜User｜>{}", m.content)),
                _ => out.push_str(&format!(
                    "<｜Assistant｜>{}<｜end▁of▁sentence｜>",
                    m.content
                )),
            }
        }
        if add_generation_prompt {
            out.push_str("<｜Assistant｜>");
        }
        out
    }
}
