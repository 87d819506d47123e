//! Interactive chat for `sluice run` without `-no-cnv` on a terminal.
//!
//! Each turn renders the whole conversation with the chat template and feeds only the text
//! that is new since the previous render, so the history stays in the KV cache. Ctrl-C stops
//! the answer being generated; at the prompt it (or `/exit`, or end of input) quits.

use anyhow::Result;
use sluice_core::backend::Backend;
use sluice_core::chat::{ChatTemplate, Message};
use sluice_core::generate::{Generator, Stop};
use sluice_core::source::block_on;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static GENERATING: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            eprintln!();
            std::process::exit(130);
        }
    });
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.to_string(),
        content: content.to_string(),
    }
}

/// Runs the chat until `/exit`, end of input, or Ctrl-C at the prompt.
pub fn run<B: Backend + 'static>(
    gen: &mut Generator<'_, '_, B>,
    template: &ChatTemplate,
    system: Option<String>,
    first: Option<String>,
    limit: Option<usize>,
    single_turn: bool,
    print_token_ids: bool,
) -> Result<()> {
    install_ctrl_c();
    let tokenizer = gen.tokenizer();
    let mut history: Vec<Message> = Vec::new();
    if let Some(s) = system.filter(|s| !s.is_empty()) {
        history.push(message("system", &s));
    }
    let mut rendered = String::new();
    let mut pending_input = first;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    eprintln!("== chat mode: /exit or Ctrl-C at the prompt to quit; Ctrl-C while it answers stops the answer ==");
    loop {
        let user = match pending_input.take() {
            Some(u) => u,
            None => {
                eprint!("\n> ");
                std::io::stderr().flush()?;
                match lines.next() {
                    None => break,
                    Some(line) => line?,
                }
            }
        };
        let user = user.trim_end_matches(['\r', '\n']).to_string();
        if user == "/exit" {
            break;
        }
        if user.is_empty() {
            continue;
        }
        history.push(message("user", &user));
        let full = template.render(&history, true);
        let delta = full
            .strip_prefix(rendered.as_str())
            .unwrap_or(&full)
            .to_string();
        let first_turn = rendered.is_empty();
        let ids = tokenizer.encode(&delta, first_turn, true);
        block_on(gen.feed(&ids))?;
        let mut answer = String::new();
        let mut generated = Vec::new();
        let mut out = std::io::stdout().lock();
        INTERRUPTED.store(false, Ordering::SeqCst);
        GENERATING.store(true, Ordering::SeqCst);
        let stop = block_on(gen.generate(limit, &mut |id, text| {
            generated.push(id);
            if !tokenizer.is_eog(id) {
                answer.push_str(text);
                let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
            }
            !INTERRUPTED.load(Ordering::SeqCst)
        }));
        GENERATING.store(false, Ordering::SeqCst);
        let stop = stop?;
        answer.push_str(&gen.flush());
        writeln!(out)?;
        if print_token_ids {
            out.flush()?;
            eprintln!("{}", crate::cmd::run::token_ids_json(&ids, &generated));
        }
        history.push(message("assistant", &answer));
        rendered = template.render(&history, false);
        match stop {
            Stop::ContextFull => {
                eprintln!(
                    "sluice: the context is full ({} tokens); ending the chat.",
                    gen.session.n_ctx()
                );
                break;
            }
            Stop::Cancelled => eprintln!("[stopped]"),
            Stop::EndOfText | Stop::Limit => {}
        }
        if single_turn {
            break;
        }
    }
    Ok(())
}
