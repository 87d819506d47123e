//! A strict HTTP/1.1 range client for one resource, written over `std::net`.
//!
//! Hand-written rather than built on a general HTTP library so that every byte-range rule
//! is explicit and checked: a range read succeeds only on `206 Partial Content` whose
//! `Content-Range` names exactly the requested bytes and the known total length, with a body
//! of exactly that many bytes. A `200` is accepted only when the whole resource was asked
//! for. Transient failures (connection refused or dropped, timeouts, 5xx/408/429, short
//! bodies, inconsistent range answers) are retried with exponential backoff; a resource that
//! changed (different `ETag`/`Last-Modified`/length) or a 4xx is a final error. Every error
//! names the URL and the byte range.

use super::message::{parse_content_range, read_chunked, read_head, ContentRange, Head};
use super::pool::{connect, ConnPool, Lease};
use super::url::HttpUrl;
use sluice_core::{Error, Result};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tunables of the range client.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Limit on establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Limit on any single socket read or write (a stalled server fails after this long).
    pub io_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles on each further retry up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Connections kept to one resource's origin (reads in flight at once).
    pub max_connections: usize,
    /// Ranges of one batch closer than this many bytes are fetched by one request.
    pub coalesce_gap: u64,
    /// Longest single request; longer reads are split and fetched in parallel.
    pub max_request_bytes: u64,
    /// Redirects followed when a resource is first opened.
    pub max_redirects: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            max_connections: 8,
            coalesce_gap: 0,
            max_request_bytes: 16 << 20,
            max_redirects: 5,
        }
    }
}

/// Identity of the resource as first seen, compared on every later response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validator {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What [`Client::probe`] learns about a resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub len: u64,
    pub validator: Validator,
}

/// The outcome of [`Client::probe`].
#[derive(Clone, Debug)]
pub enum Probe {
    Found(ResourceInfo),
    /// The `Location` of a redirect.
    Redirect(String),
}

/// Counters for tests and reports.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub bytes: AtomicU64,
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt after a backoff.
    Transient(String),
    /// A reused keep-alive connection turned out closed before any response byte.
    StaleConnection,
    /// Retrying cannot help.
    Final(String),
}

/// Requests against one URL, sharing a connection pool.
pub struct Client {
    pub url: HttpUrl,
    /// The URL as the user wrote it, for messages.
    pub name: String,
    pub config: HttpConfig,
    pool: ConnPool,
    pub stats: ClientStats,
}

/// The response head of one exchange, its status, and the connection it arrived on.
struct Response<'a> {
    status: u16,
    head: Head,
    lease: Lease<'a>,
    keep_alive: bool,
}

impl Client {
    pub fn new(url: HttpUrl, name: String, config: HttpConfig) -> Self {
        let pool = ConnPool::new(config.max_connections);
        Self {
            url,
            name,
            config,
            pool,
            stats: ClientStats::default(),
        }
    }

    fn error(&self, what: &str, msg: impl std::fmt::Display) -> Error {
        Error::io(&self.name, format!("{what}: {msg}"))
    }

    /// Sends one request and reads the response head.
    fn exchange(&self, method: &str, range: Option<(u64, u64)>) -> Result<Response<'_>, Failure> {
        let cfg = &self.config;
        let mut lease = self
            .pool
            .checkout(|| connect(&self.url.authority(), cfg.connect_timeout, cfg.io_timeout))
            .map_err(|e| {
                Failure::Transient(format!("cannot connect to {}: {e}", self.url.authority()))
            })?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice/{}\r\nAccept-Encoding: identity\r\n",
            self.url.target,
            self.url.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some((start, end)) = range {
            request.push_str(&format!("Range: bytes={start}-{}\r\n", end - 1));
        }
        request.push_str("\r\n");
        let reused = lease.reused;
        let conn = lease
            .conn
            .as_mut()
            .ok_or_else(|| Failure::Transient("connection pool handed out no connection".into()))?;
        let sent = conn.get_mut().write_all(request.as_bytes());
        let head = match sent.and_then(|()| read_head(conn)) {
            Ok(Some(head)) => head,
            Ok(None) if reused => return Err(Failure::StaleConnection),
            Err(e) if reused && is_disconnect(&e) => return Err(Failure::StaleConnection),
            Ok(None) => {
                return Err(Failure::Transient(
                    "connection closed with no response".into(),
                ))
            }
            Err(e) => return Err(Failure::Transient(describe_io(&e, cfg.io_timeout))),
        };
        let mut words = head.start_line.splitn(3, ' ');
        let version = words.next().unwrap_or("");
        let status = words
            .next()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| {
                Failure::Transient(format!("malformed status line {:?}", head.start_line))
            })?;
        let keep_alive = if version == "HTTP/1.0" {
            head.has_token("connection", "keep-alive")
        } else {
            !head.has_token("connection", "close")
        };
        Ok(Response {
            status,
            head,
            lease,
            keep_alive,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or attempts run out.
    fn with_retries<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T> {
        let mut delay = self.config.backoff_initial;
        let mut tries = 0u32;
        let mut stale = 0u32;
        loop {
            tries += 1;
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Final(msg)) => return Err(self.error(what, msg)),
                Err(Failure::StaleConnection) if stale < self.config.max_connections as u32 => {
                    // Idle keep-alive connections the server closed: not a failed attempt.
                    stale += 1;
                    tries -= 1;
                }
                Err(Failure::StaleConnection) => {
                    return Err(self.error(what, "every pooled connection was closed by the server"))
                }
                Err(Failure::Transient(msg)) if tries >= self.config.max_attempts => {
                    return Err(self.error(what, format!("{msg} (gave up after {tries} attempts)")))
                }
                Err(Failure::Transient(_)) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.config.backoff_max);
                }
            }
        }
    }

    /// Learns the length and validators of the resource: `HEAD`, or a one-byte range `GET`
    /// when `HEAD` is refused or gives no length. A redirect is reported, not followed.
    pub fn probe(&self) -> Result<Probe> {
        let head = self.with_retries("HEAD", || {
            let r = self.exchange("HEAD", None)?;
            check_status_retryable(r.status)?;
            let mut r = r;
            if r.keep_alive {
                r.lease.keep();
            }
            Ok((r.status, r.head))
        })?;
        let (status, head) = head;
        let validator = validator_of(&head);
        match status {
            301 | 302 | 303 | 307 | 308 => {
                return match head.get("location") {
                    Some(loc) => Ok(Probe::Redirect(loc.to_string())),
                    None => Err(self.error("HEAD", format!("HTTP {status} without a Location"))),
                }
            }
            200 => {
                if head
                    .get("accept-ranges")
                    .is_some_and(|v| v.trim() == "none")
                {
                    return Err(self.error(
                        "HEAD",
                        "the server says it does not serve byte ranges (Accept-Ranges: none)",
                    ));
                }
                if let Ok(Some(len)) = head.content_length() {
                    return Ok(Probe::Found(ResourceInfo { len, validator }));
                }
            }
            405 | 501 => {}
            s => return Err(self.error("HEAD", format!("HTTP {s}{}", reason(&head)))),
        }
        self.with_retries("bytes 0-0 (length probe)", || {
            let mut r = self.exchange("GET", Some((0, 1)))?;
            check_status_retryable(r.status)?;
            let cr = r.head.get("content-range").and_then(parse_content_range);
            let len = match (r.status, cr) {
                (206, Some(ContentRange::Satisfied { first: 0, last: 0, complete: Some(len) })) => {
                    let conn = r.lease.conn.as_mut().ok_or_else(|| Failure::Transient("no connection".into()))?;
                    read_exact_body(conn, 1, self.config.io_timeout)?;
                    len
                }
                (416, Some(ContentRange::Unsatisfied { complete: 0 })) => 0,
                (200, _) => {
                    return Err(Failure::Final(
                        "the server ignores Range requests (answered 200); it cannot serve model weights".into(),
                    ))
                }
                (s, _) => {
                    return Err(Failure::Final(format!(
                        "HTTP {s} with Content-Range {:?} to the length probe",
                        r.head.get("content-range")
                    )))
                }
            };
            if r.keep_alive {
                r.lease.keep();
            }
            Ok(Probe::Found(ResourceInfo { len, validator: validator_of(&r.head) }))
        })
    }

    /// Reads bytes `start..end` (end exclusive) of a resource of `total` bytes whose
    /// validators were `expected`, with retries.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        total: u64,
        expected: &Validator,
    ) -> Result<Vec<u8>> {
        let what = format!("bytes {start}-{}", end.saturating_sub(1));
        if start >= end {
            return Ok(Vec::new());
        }
        let body = self.with_retries(&what, || self.attempt_range(start, end, total, expected))?;
        self.stats
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }

    fn attempt_range(
        &self,
        start: u64,
        end: u64,
        total: u64,
        expected: &Validator,
    ) -> Result<Vec<u8>, Failure> {
        let mut r = self.exchange("GET", Some((start, end)))?;
        check_status_retryable(r.status)?;
        if matches!(r.status, 200 | 206) {
            check_validator(expected, &r.head)?;
        }
        let want = end - start;
        match r.status {
            206 => {
                let cr = r.head.get("content-range");
                match cr.and_then(parse_content_range) {
                    Some(ContentRange::Satisfied { complete: Some(c), .. }) if c != total => {
                        return Err(Failure::Final(format!(
                            "the resource is now {c} bytes long, not {total}: it changed while in use"
                        )))
                    }
                    Some(ContentRange::Satisfied { first, last, complete: Some(_) })
                        if first == start && last + 1 == end => {}
                    _ => {
                        return Err(Failure::Transient(format!(
                            "206 with Content-Range {cr:?}, expected \"bytes {start}-{}/{total}\"",
                            end - 1
                        )))
                    }
                }
            }
            200 if start == 0 && end == total => {}
            200 => {
                return Err(Failure::Transient(
                    "answered 200 (the whole resource) to a range request; the server may not support ranges"
                        .into(),
                ))
            }
            416 => {
                return Err(Failure::Final(format!(
                    "416 Range Not Satisfiable (server says {:?}); the resource changed or is shorter than {total} bytes",
                    r.head.get("content-range")
                )))
            }
            s => return Err(Failure::Final(format!("HTTP {s}{}", reason(&r.head)))),
        }
        let io_timeout = self.config.io_timeout;
        let conn = r
            .lease
            .conn
            .as_mut()
            .ok_or_else(|| Failure::Transient("no connection".into()))?;
        let body = match r.head.content_length() {
            Ok(Some(n)) if n == want => read_exact_body(conn, want as usize, io_timeout)?,
            Ok(Some(n)) => {
                return Err(Failure::Transient(format!(
                    "Content-Length {n} does not match the {want} bytes of the range"
                )))
            }
            Ok(None) if r.head.has_token("transfer-encoding", "chunked") => {
                let body = read_chunked(conn, want as usize).map_err(|e| {
                    Failure::Transient(format!("chunked body: {}", describe_io(&e, io_timeout)))
                })?;
                if body.len() as u64 != want {
                    return Err(Failure::Transient(format!(
                        "short body: {} of {want} bytes",
                        body.len()
                    )));
                }
                body
            }
            Ok(None) => return Err(Failure::Transient("response has no Content-Length".into())),
            Err(e) => return Err(Failure::Transient(e)),
        };
        if r.keep_alive {
            r.lease.keep();
        }
        Ok(body)
    }

    /// GETs a small document (at most `limit` bytes); `Ok(None)` on 404/410.
    pub fn get_document(&self, limit: usize) -> Result<Option<Vec<u8>>> {
        self.with_retries("GET", || {
            let mut r = self.exchange("GET", None)?;
            check_status_retryable(r.status)?;
            match r.status {
                200 => {}
                404 | 410 => return Ok(None),
                s => return Err(Failure::Final(format!("HTTP {s}{}", reason(&r.head)))),
            }
            let io_timeout = self.config.io_timeout;
            let keep = r.keep_alive;
            let conn = r
                .lease
                .conn
                .as_mut()
                .ok_or_else(|| Failure::Transient("no connection".into()))?;
            let body = match r.head.content_length() {
                Ok(Some(n)) if n > limit as u64 => {
                    return Err(Failure::Final(format!(
                        "document of {n} bytes is over the {limit}-byte limit"
                    )))
                }
                Ok(Some(n)) => read_exact_body(conn, n as usize, io_timeout)?,
                Ok(None) if r.head.has_token("transfer-encoding", "chunked") => {
                    read_chunked(conn, limit)
                        .map_err(|e| Failure::Transient(describe_io(&e, io_timeout)))?
                }
                Ok(None) => {
                    let mut body = Vec::new();
                    conn.take(limit as u64 + 1)
                        .read_to_end(&mut body)
                        .map_err(|e| Failure::Transient(describe_io(&e, io_timeout)))?;
                    if body.len() > limit {
                        return Err(Failure::Final(format!(
                            "document is over the {limit}-byte limit"
                        )));
                    }
                    return Ok(Some(body));
                }
                Err(e) => return Err(Failure::Transient(e)),
            };
            if keep {
                r.lease.keep();
            }
            Ok(Some(body))
        })
    }
}

fn check_status_retryable(status: u16) -> Result<(), Failure> {
    if status >= 500 || status == 408 || status == 429 {
        return Err(Failure::Transient(format!("HTTP {status}")));
    }
    Ok(())
}

fn validator_of(head: &Head) -> Validator {
    Validator {
        etag: head.get("etag").map(str::to_string),
        last_modified: head.get("last-modified").map(str::to_string),
    }
}

/// A response must carry the same ETag (or, without ETags, the same Last-Modified) as when
/// the resource was opened.
fn check_validator(expected: &Validator, head: &Head) -> Result<(), Failure> {
    let got = validator_of(head);
    let changed = match (&expected.etag, &got.etag) {
        (Some(a), Some(b)) => a != b,
        _ => matches!((&expected.last_modified, &got.last_modified), (Some(a), Some(b)) if a != b),
    };
    if changed {
        return Err(Failure::Final(format!(
            "the resource changed while in use (ETag {:?} → {:?}, Last-Modified {:?} → {:?})",
            expected.etag, got.etag, expected.last_modified, got.last_modified
        )));
    }
    Ok(())
}

fn reason(head: &Head) -> String {
    match head.start_line.splitn(3, ' ').nth(2) {
        Some(r) if !r.is_empty() => format!(" {r}"),
        _ => String::new(),
    }
}

fn read_exact_body(
    conn: &mut impl Read,
    len: usize,
    io_timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match conn.read(&mut body[got..]) {
            Ok(0) => {
                return Err(Failure::Transient(format!(
                    "short body: connection closed after {got} of {len} bytes"
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::Transient(format!(
                    "body broken after {got} of {len} bytes: {}",
                    describe_io(&e, io_timeout)
                )))
            }
        }
    }
    Ok(body)
}

/// Errors meaning the peer had closed the connection (as opposed to a timeout).
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn describe_io(e: &io::Error, io_timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no data for {:.1} s (timeout)", io_timeout.as_secs_f64())
        }
        _ => e.to_string(),
    }
}
