//! llama.cpp command-line compatibility.
//!
//! llama.cpp spells several options as one dash followed by several letters (`-ngl`,
//! `-no-cnv`, `-ctk`) and some guides use underscores (`--min_p`). Before clap sees the
//! arguments they are rewritten to their long forms, so commands copied from those guides run
//! unchanged. Only exact matches are rewritten; anything else is left for clap to judge (and
//! clap suggests the closest valid name for a typo).

/// llama.cpp's multi-letter single-dash flags and underscore spellings, with the long
/// option sluice uses.
const ALIASES: &[(&str, &str)] = &[
    ("-no-cnv", "--no-conversation"),
    ("-cnv", "--conversation"),
    ("-sys", "--system-prompt"),
    ("-ngl", "--n-gpu-layers"),
    ("--gpu-layers", "--n-gpu-layers"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
    ("-ot", "--override-tensor"),
    ("-cmoe", "--cpu-moe"),
    ("-ncmoe", "--n-cpu-moe"),
    ("-fa", "--flash-attn"),
    ("-ub", "--ubatch-size"),
    ("-st", "--single-turn"),
    ("-sp", "--special"),
    ("-nr", "--no-repack"),
    ("-dev", "--device"),
    ("-mli", "--multiline-input"),
    ("-lv", "--verbosity"),
    ("--predict", "--n-predict"),
    ("--min_p", "--min-p"),
    ("--top_p", "--top-p"),
    ("--top_k", "--top-k"),
    ("--repeat_penalty", "--repeat-penalty"),
    ("--repeat_last_n", "--repeat-last-n"),
    ("--ctx_size", "--ctx-size"),
    ("--n_predict", "--n-predict"),
    ("--n_gpu_layers", "--n-gpu-layers"),
    ("--cache_type_k", "--cache-type-k"),
    ("--cache_type_v", "--cache-type-v"),
];

/// Rewrites llama.cpp spellings (also in `--flag=value` form) to sluice's long options.
/// `takes_value(long_flag)` says whether an option consumes the next argument, so that a
/// value that happens to look like a flag (`-p -ngl`) is left alone.
pub fn normalize(
    args: impl IntoIterator<Item = String>,
    takes_value: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut after_double_dash = false;
    let mut value_next = false;
    for a in args {
        if after_double_dash || value_next {
            value_next = false;
            out.push(a);
            continue;
        }
        if a == "--" {
            after_double_dash = true;
            out.push(a);
            continue;
        }
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let long = ALIASES
            .iter()
            .find(|(from, _)| *from == flag)
            .map(|(_, to)| to.to_string());
        value_next = value.is_none() && takes_value(long.as_deref().unwrap_or(&flag));
        match (long, value) {
            (Some(to), Some(v)) => out.push(format!("{to}={v}")),
            (Some(to), None) => out.push(to),
            (None, _) => out.push(a),
        }
    }
    out
}

/// Processes the escapes llama.cpp's `-e` handles: `\n \r \t \' \" \\ \a \b \f \v \0 \xNN`.
pub fn process_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('0') => out.push('\0'),
            Some('x') => {
                let hex: String = chars
                    .clone()
                    .take(2)
                    .take_while(|h| h.is_ascii_hexdigit())
                    .collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 && b < 0x80 => {
                        out.push(b as char);
                        chars.nth(1);
                    }
                    _ => out.push_str("\\x"),
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rewrites_llama_cpp_spellings() {
        let takes = |f: &str| matches!(f, "--n-gpu-layers" | "--min-p" | "-p" | "--cache-type-k");
        let got = normalize(
            v(&[
                "run",
                "-ngl",
                "2",
                "-no-cnv",
                "--min_p",
                "0.01",
                "-ctk=q8_0",
                "-p",
                "-ngl",
            ]),
            takes,
        );
        assert_eq!(
            got,
            v(&[
                "run",
                "--n-gpu-layers",
                "2",
                "--no-conversation",
                "--min-p",
                "0.01",
                "--cache-type-k=q8_0",
                "-p",
                "-ngl"
            ])
        );
        let got = normalize(v(&["run", "--", "-ngl"]), takes);
        assert_eq!(got, v(&["run", "--", "-ngl"]));
    }

    #[test]
    fn escapes() {
        assert_eq!(process_escapes(r"a\nb\\n\t\x41\q"), "a\nb\\n\tA\\q");
    }
}
