//! The rules a range response must follow before its body is trusted as model bytes.
//!
//! Kept apart from the `fetch` plumbing so they run (and are unit-tested) on any target. The
//! messages match those of the native HTTP client, so a weights host that misbehaves reads the
//! same in the browser as on the command line.

/// A parsed `Content-Range` header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FIRST-LAST/COMPLETE` (`COMPLETE` is `None` for `*`).
    Satisfied {
        first: u64,
        last: u64,
        complete: Option<u64>,
    },
    /// `bytes */COMPLETE` (sent with 416).
    Unsatisfied { complete: u64 },
}

/// Parses `bytes 0-99/1000`, `bytes 0-99/*` or `bytes */1000`; `None` for anything else.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, complete) = rest.split_once('/')?;
    let complete = complete.trim();
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied {
            complete: complete.parse().ok()?,
        });
    }
    let (first, last) = range.trim().split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    if last < first {
        return None;
    }
    let complete = match complete {
        "*" => None,
        n => Some(n.parse().ok()?),
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

/// How a failed attempt should be treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try (network error, 5xx, 408, 429, a malformed answer).
    Transient(String),
    /// Retrying cannot help (4xx, a changed resource, a server without ranges).
    Final(String),
}

/// Statuses that may succeed on a later attempt.
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The length of a resource from the answer to a one-byte probe (`Range: bytes=0-0`).
pub fn probe_length(status: u16, content_range: Option<&str>) -> Result<u64, Failure> {
    if retryable_status(status) {
        return Err(Failure::Transient(format!("HTTP {status}")));
    }
    match (status, content_range.and_then(parse_content_range)) {
        (
            206,
            Some(ContentRange::Satisfied {
                first: 0,
                last: 0,
                complete: Some(len),
            }),
        ) => Ok(len),
        (416, Some(ContentRange::Unsatisfied { complete: 0 })) => Ok(0),
        (200, _) => Err(Failure::Final(
            "the server ignores Range requests (answered 200); it cannot serve model weights"
                .into(),
        )),
        (206, None) if content_range.is_none() => Err(Failure::Final(
            "206 without a readable Content-Range: a cross-origin weights host must list \
             Content-Range in Access-Control-Expose-Headers"
                .into(),
        )),
        (s, _) => Err(Failure::Final(format!(
            "HTTP {s} with Content-Range {content_range:?} to the length probe"
        ))),
    }
}

/// Checks the head of the answer to `Range: bytes=start-(end-1)` on a resource of `total` bytes.
pub fn check_range_answer(
    status: u16,
    content_range: Option<&str>,
    start: u64,
    end: u64,
    total: u64,
) -> Result<(), Failure> {
    if retryable_status(status) {
        return Err(Failure::Transient(format!("HTTP {status}")));
    }
    match status {
        206 => match content_range.and_then(parse_content_range) {
            Some(ContentRange::Satisfied {
                complete: Some(c), ..
            }) if c != total => Err(Failure::Final(format!(
                "the resource is now {c} bytes long, not {total}: it changed while in use"
            ))),
            Some(ContentRange::Satisfied {
                first,
                last,
                complete: Some(_),
            }) if first == start && last + 1 == end => Ok(()),
            _ => Err(Failure::Transient(format!(
                "206 with Content-Range {content_range:?}, expected \"bytes {start}-{}/{total}\"",
                end - 1
            ))),
        },
        200 if start == 0 && end == total => Ok(()),
        200 => Err(Failure::Transient(
            "answered 200 (the whole resource) to a range request; the server may not support ranges"
                .into(),
        )),
        416 => Err(Failure::Final(format!(
            "416 Range Not Satisfiable (server says {content_range:?}); the resource changed or is shorter than {total} bytes"
        ))),
        s => Err(Failure::Final(format!("HTTP {s}"))),
    }
}

/// A response must carry the ETag (or, without one, the Last-Modified) seen when the resource
/// was opened.
pub fn check_validator(
    expected: &(Option<String>, Option<String>),
    got: &(Option<String>, Option<String>),
) -> Result<(), Failure> {
    let changed = match (&expected.0, &got.0) {
        (Some(a), Some(b)) => a != b,
        _ => matches!((&expected.1, &got.1), (Some(a), Some(b)) if a != b),
    };
    if changed {
        return Err(Failure::Final(format!(
            "the resource changed while in use (ETag {:?} → {:?}, Last-Modified {:?} → {:?})",
            expected.0, got.0, expected.1, got.1
        )));
    }
    Ok(())
}

/// Spans `(offset, len)` and, per input range, `(span index, offset within span)`.
pub type MergedRanges = (Vec<(u64, u64)>, Vec<(usize, u64)>);

/// Groups ranges that touch or overlap into spans, so one request can carry several reads.
/// Returns the spans and, per input range, `(span index, offset within span)`.
pub fn merge_ranges(ranges: &[(u64, usize)]) -> MergedRanges {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].0);
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut place = vec![(0usize, 0u64); ranges.len()];
    for i in order {
        let (start, len) = ranges[i];
        let end = start + len as u64;
        match spans.last_mut() {
            Some(span) if start <= span.1 => span.1 = span.1.max(end),
            _ => spans.push((start, end)),
        }
        let span = spans.len() - 1;
        place[i] = (span, start - spans[span].0);
    }
    (spans, place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(ContentRange::Satisfied {
                first: 0,
                last: 99,
                complete: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-5/*"),
            Some(ContentRange::Satisfied {
                first: 5,
                last: 5,
                complete: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */77"),
            Some(ContentRange::Unsatisfied { complete: 77 })
        );
        for bad in [
            "bytes 9-3/100",
            "bytes 0-100/100",
            "items 0-1/2",
            "bytes 0-1",
            "bytes a-b/3",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn probe_reads_the_total_length() {
        assert_eq!(probe_length(206, Some("bytes 0-0/4096")), Ok(4096));
        assert_eq!(probe_length(416, Some("bytes */0")), Ok(0));
        assert!(
            matches!(probe_length(200, None), Err(Failure::Final(m)) if m.contains("ignores Range"))
        );
        assert!(
            matches!(probe_length(206, None), Err(Failure::Final(m)) if m.contains("Expose-Headers"))
        );
        assert!(matches!(
            probe_length(503, None),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(probe_length(404, None), Err(Failure::Final(m)) if m.contains("404")));
    }

    #[test]
    fn range_answers_must_match_exactly() {
        assert_eq!(
            check_range_answer(206, Some("bytes 10-19/100"), 10, 20, 100),
            Ok(())
        );
        // A shifted or shortened range is retried, a resized resource is not.
        assert!(matches!(
            check_range_answer(206, Some("bytes 10-18/100"), 10, 20, 100),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            check_range_answer(206, Some("bytes 10-19/101"), 10, 20, 100),
            Err(Failure::Final(m)) if m.contains("changed while in use")
        ));
        assert_eq!(check_range_answer(200, None, 0, 100, 100), Ok(()));
        assert!(matches!(
            check_range_answer(200, None, 0, 50, 100),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            check_range_answer(429, None, 0, 50, 100),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            check_range_answer(403, None, 0, 50, 100),
            Err(Failure::Final(m)) if m == "HTTP 403"
        ));
    }

    #[test]
    fn validators_detect_a_replaced_file() {
        let a = (Some("\"1\"".to_string()), None);
        let b = (Some("\"2\"".to_string()), None);
        assert!(check_validator(&a, &a).is_ok());
        assert!(check_validator(&a, &b).is_err());
        assert!(check_validator(&a, &(None, None)).is_ok());
    }

    #[test]
    fn adjacent_ranges_share_a_request() {
        let ranges = [(100, 10), (0, 50), (50, 50), (300, 5)];
        let (spans, place) = merge_ranges(&ranges);
        assert_eq!(spans, vec![(0, 110), (300, 305)]);
        assert_eq!(place, vec![(0, 100), (0, 0), (0, 50), (1, 0)]);
    }
}
