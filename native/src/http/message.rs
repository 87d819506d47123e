//! HTTP/1.1 message pieces shared by the range client and `sluice serve`.
//!
//! Only what a byte-range weights host needs: reading a message head (start line + header
//! fields) with hard size limits, the `Range` and `Content-Range` grammars of RFC 9110 §14,
//! chunked bodies (for small documents such as a manifest), and IMF-fixdate formatting for
//! `Last-Modified`. Both sides use the same code so their idea of the grammar cannot drift.

use std::io::{self, BufRead, Read};

/// Upper bound on a message head (start line plus all header fields).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Upper bound on the number of header fields.
pub const MAX_HEADERS: usize = 100;

/// A message head: the start line and the header fields in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many fields are named `name`.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// `Content-Length` as a number; `Err` when present but malformed or repeated with
    /// different values.
    pub fn content_length(&self) -> Result<Option<u64>, String> {
        let mut found: Option<u64> = None;
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("content-length") {
                continue;
            }
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("malformed Content-Length {v:?}"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| format!("Content-Length {v:?} is too large"))?;
            if found.is_some_and(|f| f != n) {
                return Err("conflicting Content-Length fields".into());
            }
            found = Some(n);
        }
        Ok(found)
    }

    /// Whether a comma-separated field (e.g. `Connection`) lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Reads one message head. `Ok(None)` means the peer closed the connection cleanly before
/// sending any byte (an idle keep-alive connection going away).
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut total = 0usize;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut raw = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD_BYTES - total + 1) as u64)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            if lines.is_empty() && total == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(bad_data(format!(
                "message head longer than {MAX_HEAD_BYTES} bytes"
            )));
        }
        if raw.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        raw.pop();
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        // Leading empty lines before a request line are tolerated (RFC 9112 §2.2).
        if raw.is_empty() && lines.is_empty() {
            continue;
        }
        if raw.is_empty() {
            break;
        }
        let line = String::from_utf8(raw).map_err(|_| bad_data("header line is not UTF-8"))?;
        lines.push(line);
        if lines.len() > MAX_HEADERS + 1 {
            return Err(bad_data(format!("more than {MAX_HEADERS} header fields")));
        }
    }
    let mut lines = lines.into_iter();
    let start_line = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(bad_data("obsolete header line folding"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_data(format!("header line without a colon: {line:?}")))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad_data(format!("invalid header name {name:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Some(Head {
        start_line,
        headers,
    }))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A parsed `Content-Range` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/complete` (`complete` is `None` for `*`).
    Satisfied {
        first: u64,
        last: u64,
        complete: Option<u64>,
    },
    /// `bytes */complete`, sent with 416.
    Unsatisfied { complete: u64 },
}

/// Parses a `Content-Range` field value (RFC 9110 §14.4).
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?.trim_start();
    let (range, complete) = rest.split_once('/')?;
    if range == "*" {
        return Some(ContentRange::Unsatisfied {
            complete: parse_digits(complete)?,
        });
    }
    let (first, last) = range.split_once('-')?;
    let (first, last) = (parse_digits(first)?, parse_digits(last)?);
    if last < first {
        return None;
    }
    let complete = match complete {
        "*" => None,
        c => Some(parse_digits(c)?),
    };
    if complete.is_some_and(|c| last >= c) {
        return None;
    }
    Some(ContentRange::Satisfied {
        first,
        last,
        complete,
    })
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a `Range` request field asks for, against a representation of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Absent, not `bytes`, or malformed: the field is ignored and the whole body is sent.
    Ignore,
    /// More than one range: sluice serve answers these with the whole body (200), which
    /// RFC 9110 §14.2 allows ("a server MAY ignore the Range header field").
    Multiple,
    /// One satisfiable range, as absolute `start..end` (end exclusive).
    Single { start: u64, end: u64 },
    /// One range that does not overlap the representation (416).
    Unsatisfiable,
}

/// Evaluates a `Range` field value for a representation of `len` bytes (RFC 9110 §14.1.2).
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        // Either another unit or not a ranges-specifier at all: ignore.
        return RangeRequest::Ignore;
    };
    let parts: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return RangeRequest::Ignore;
    }
    let mut parsed = Vec::with_capacity(parts.len());
    for p in &parts {
        let Some((a, b)) = p.split_once('-') else {
            return RangeRequest::Ignore;
        };
        let (a, b) = (a.trim(), b.trim());
        let r = match (a.is_empty(), b.is_empty()) {
            (false, false) => match (parse_digits(a), parse_digits(b)) {
                (Some(first), Some(last)) if first <= last => (Some(first), Some(last)),
                _ => return RangeRequest::Ignore,
            },
            (false, true) => match parse_digits(a) {
                Some(first) => (Some(first), None),
                None => return RangeRequest::Ignore,
            },
            (true, false) => match parse_digits(b) {
                Some(suffix) => (None, Some(suffix)),
                None => return RangeRequest::Ignore,
            },
            (true, true) => return RangeRequest::Ignore,
        };
        parsed.push(r);
    }
    if parsed.len() > 1 {
        return RangeRequest::Multiple;
    }
    match parsed[0] {
        (Some(first), last) => {
            if first >= len {
                return RangeRequest::Unsatisfiable;
            }
            let end = last.map_or(len, |l| l.saturating_add(1).min(len));
            RangeRequest::Single { start: first, end }
        }
        (None, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Single {
                start: len - suffix.min(len),
                end: len,
            }
        }
        (None, None) => RangeRequest::Ignore,
    }
}

/// Reads a chunked body (RFC 9112 §7.1) of at most `limit` bytes, discarding trailers.
pub fn read_chunked(reader: &mut impl BufRead, limit: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.by_ref().take(1024).read_line(&mut line)?;
        if !line.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size_text = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| bad_data(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailer section: lines until an empty one.
            loop {
                let mut t = String::new();
                reader.by_ref().take(8192).read_line(&mut t)?;
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > limit {
            return Err(bad_data(format!("chunked body longer than {limit} bytes")));
        }
        let at = body.len();
        body.resize(at + size, 0);
        reader.read_exact(&mut body[at..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad_data("chunk not followed by CRLF"));
        }
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Gregorian (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's days-to-civil algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_grammar() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Single { start: 0, end: 10 });
        assert_eq!(
            parse_range("bytes=90-", 100),
            Single {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Single {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            parse_range("bytes=-1000", 100),
            Single { start: 0, end: 100 }
        );
        assert_eq!(
            parse_range("bytes=50-1000", 100),
            Single {
                start: 50,
                end: 100
            }
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=9-0", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=a-b", 100), Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Multiple);
    }

    #[test]
    fn content_range_grammar() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some(ContentRange::Satisfied {
                first: 0,
                last: 9,
                complete: Some(100)
            })
        );
        assert_eq!(
            parse_content_range("bytes */100"),
            Some(ContentRange::Unsatisfied { complete: 100 })
        );
        assert_eq!(parse_content_range("bytes 5-4/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn heads() {
        let raw = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\ncontent-length: 10\r\nConnection: keep-alive, Upgrade\r\n\r\nBODY";
        let mut r = std::io::BufReader::new(&raw[..]);
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!(h.start_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(h.content_length(), Ok(Some(10)));
        assert!(h.has_token("connection", "upgrade"));
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "BODY");
        let mut empty = std::io::BufReader::new(&b""[..]);
        assert!(read_head(&mut empty).unwrap().is_none());
        let mut cut = std::io::BufReader::new(&b"HTTP/1.1 200 OK\r\nA: b"[..]);
        assert!(read_head(&mut cut).is_err());
    }
}
