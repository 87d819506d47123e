//! Split-file naming: `<prefix>-%05d-of-%05d.gguf`, as llama.cpp's gguf-split writes it.
//!
//! These are pure string functions so that a local path, a URL or a browser-relative name all
//! split the same way.

/// A parsed split name: the prefix and the 1-based part number and total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitName {
    pub prefix: String,
    /// 1-based part number.
    pub number: u32,
    pub count: u32,
}

/// Parses `…-00002-of-00006.gguf` (optionally followed by a URL query or fragment).
pub fn parse_split_name(path: &str) -> Option<SplitName> {
    let cut = path.find(['?', '#']).unwrap_or(path.len());
    let (path, _) = path.split_at(cut);
    let stem = path.strip_suffix(".gguf")?;
    // "-NNNNN-of-MMMMM" is 15 bytes.
    if stem.len() < 15 || !stem.is_char_boundary(stem.len() - 15) {
        return None;
    }
    let (prefix, tail) = stem.split_at(stem.len() - 15);
    let b = tail.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if b[0] != b'-' || &b[6..10] != b"-of-" || !digits(&b[1..6]) || !digits(&b[10..15]) {
        return None;
    }
    let number: u32 = tail[1..6].parse().ok()?;
    let count: u32 = tail[10..15].parse().ok()?;
    if number == 0 || count == 0 || number > count {
        return None;
    }
    Some(SplitName {
        prefix: prefix.to_string(),
        number,
        count,
    })
}

/// The path of part `number` (1-based) of `count` for `prefix`, keeping any query suffix of
/// `like` (so signed URLs keep working).
pub fn split_path(prefix: &str, number: u32, count: u32) -> String {
    format!("{prefix}-{number:05}-of-{count:05}.gguf")
}

/// Like [`split_path`], but rebuilt from another part's full path or URL, keeping its query.
pub fn sibling_path(any_part: &str, number: u32) -> Option<String> {
    let name = parse_split_name(any_part)?;
    let query = any_part
        .find(['?', '#'])
        .map(|i| &any_part[i..])
        .unwrap_or("");
    Some(format!(
        "{}{query}",
        split_path(&name.prefix, number, name.count)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_cpp_names() {
        let n = parse_split_name("/m/DeepSeek-V3-0324-UD-Q2_K_XL-00002-of-00006.gguf").unwrap();
        assert_eq!(n.prefix, "/m/DeepSeek-V3-0324-UD-Q2_K_XL");
        assert_eq!((n.number, n.count), (2, 6));
        assert_eq!(
            sibling_path("http://h/x-00002-of-00006.gguf?sig=1", 1).unwrap(),
            "http://h/x-00001-of-00006.gguf?sig=1"
        );
        assert!(parse_split_name("model.gguf").is_none());
        assert!(parse_split_name("a-00007-of-00006.gguf").is_none());
        assert!(parse_split_name("a-0000x-of-00006.gguf").is_none());
        assert!(parse_split_name("é-00001-of-00002.gguf").is_some());
    }
}
