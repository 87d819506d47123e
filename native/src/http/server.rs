//! `sluice serve`: a read-only HTTP/1.1 weights host for a directory of GGUF files.
//!
//! One thread per connection (at most `max_connections`; further connections wait in the
//! listen backlog), keep-alive, no request bodies. A thread-per-connection server over
//! `std::net` was chosen over an async stack: the work is `sendfile`-style copying from
//! files, concurrency is bounded and small, and every RFC 9110 rule below is visible in one
//! place instead of spread over framework defaults.
//!
//! Semantics:
//! * `GET`/`HEAD` of files under the root, `ETag` (strong, from size and mtime),
//!   `Last-Modified`, `Accept-Ranges: bytes`; `If-None-Match`/`If-Modified-Since` → 304.
//! * `Range` on `GET` (ignored on `HEAD`, as RFC 9110 §14.2 says): one range → 206 with
//!   `Content-Range`; `bytes=N-`, `bytes=-N` supported; a range starting at or past the end
//!   → 416 with `Content-Range: bytes */len`; malformed or non-`bytes` → ignored (200).
//!   **Several ranges → 200 with the whole file** (allowed by RFC 9110; no multipart).
//!   `If-Range` that does not match the current ETag (strong comparison) or Last-Modified
//!   date exactly → the Range is ignored (200 full).
//! * `GET /models.json`: the model listing (see [`super::listing`]).
//! * CORS: `Access-Control-Allow-Origin` only for origins given with `--cors-origin` (or `*`)
//!   and for the server's own origin (`http://` + the request's Host); preflight `OPTIONS`
//!   answered with 204 for allowed origins, 403 otherwise.
//! * Mounts: the model directory, then optionally a static `--www` directory at the same
//!   root (for the web demo; it also gets `index.html` for directory paths).
//! * Never outside the roots: see [`super::files`].

use super::files::{Mount, Refusal, ServedFile};
use super::listing::Lister;
use super::message::{http_date, parse_range, read_head, Head, RangeRequest};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything `sluice serve` can be told.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The directory of models.
    pub root: PathBuf,
    /// Optional static directory also served at `/` (after the models).
    pub www: Option<PathBuf>,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Origins allowed cross-origin access (`*` for any).
    pub cors_origins: Vec<String>,
    pub max_connections: usize,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Limit on one socket write.
    pub io_timeout: Duration,
    /// Print one line per request to stderr.
    pub log_requests: bool,
}

impl ServerConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            www: None,
            host: "127.0.0.1".into(),
            port: 8080,
            cors_origins: Vec::new(),
            max_connections: 64,
            idle_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(60),
            log_requests: false,
        }
    }
}

struct Shared {
    config: ServerConfig,
    mounts: Vec<Mount>,
    lister: Lister,
    stop: AtomicBool,
    active: Mutex<usize>,
    slot_freed: Condvar,
}

/// A running server; dropping it stops accepting connections.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port` of the listening socket.
    pub fn base_url(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("http://{a}"),
            SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
        }
    }

    /// Blocks until the server stops (it runs until the process ends).
    pub fn wait(mut self) {
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.slot_freed.notify_all();
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop_now();
        }
    }
}

/// Binds and starts serving in background threads.
pub fn start(config: ServerConfig) -> io::Result<ServerHandle> {
    let mut mounts = vec![Mount::new(&config.root, false).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("model directory {}: {e}", config.root.display()),
        )
    })?];
    if let Some(www) = &config.www {
        mounts.push(Mount::new(www, true).map_err(|e| {
            io::Error::new(e.kind(), format!("--www directory {}: {e}", www.display()))
        })?);
    }
    let listener = TcpListener::bind((config.host.as_str(), config.port))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        config,
        mounts,
        lister: Lister::default(),
        stop: AtomicBool::new(false),
        active: Mutex::new(0),
        slot_freed: Condvar::new(),
    });
    let accept_shared = Arc::clone(&shared);
    let acceptor = std::thread::Builder::new()
        .name("sluice-serve-accept".into())
        .spawn(move || accept_loop(listener, accept_shared))?;
    Ok(ServerHandle {
        addr,
        shared,
        acceptor: Some(acceptor),
    })
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        {
            let mut active = shared.active.lock().unwrap_or_else(|p| p.into_inner());
            while *active >= shared.config.max_connections && !shared.stop.load(Ordering::SeqCst) {
                active = shared
                    .slot_freed
                    .wait(active)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        *shared.active.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("sluice-serve-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
                *conn_shared.active.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                conn_shared.slot_freed.notify_one();
            });
        if spawned.is_err() {
            *shared.active.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        }
    }
}

/// What to send after the head.
enum Body {
    Empty,
    Bytes(Vec<u8>),
    File {
        file: std::fs::File,
        start: u64,
        len: u64,
    },
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
    /// Content-Length to announce (for HEAD, the length a GET would send).
    length: u64,
}

impl Response {
    fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            length: 0,
        }
    }

    fn text(status: u16, text: &str) -> Self {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type", "text/plain; charset=utf-8".into()));
        r.length = text.len() as u64 + 1;
        r.body = Body::Bytes(format!("{text}\n").into_bytes());
        r
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(shared.config.idle_timeout))?;
    stream.set_write_timeout(Some(shared.config.io_timeout))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let r = Response::text(400, &format!("bad request: {e}"));
                return send(&mut writer, r, false, false);
            }
            Err(_) => return Ok(()),
        };
        let (response, is_head, keep_alive) = answer(&head, shared);
        if shared.config.log_requests {
            eprintln!("{} {}", head.start_line, response.status);
        }
        send(&mut writer, response, is_head, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Builds the response to one request: `(response, is HEAD, keep the connection)`.
fn answer(head: &Head, shared: &Shared) -> (Response, bool, bool) {
    let mut words = head.start_line.split(' ');
    let (method, target, version) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t, v),
        _ => return (Response::text(400, "malformed request line"), false, false),
    };
    let keep_alive = if version == "HTTP/1.0" {
        head.has_token("connection", "keep-alive")
    } else {
        !head.has_token("connection", "close")
    };
    let is_head = method == "HEAD";
    if version != "HTTP/1.0" && head.count("host") != 1 {
        return (
            Response::text(400, "exactly one Host header is required"),
            is_head,
            false,
        );
    }
    // No request carries a body here; refuse rather than misread the stream.
    let has_body = head.get("transfer-encoding").is_some()
        || !matches!(head.content_length(), Ok(None) | Ok(Some(0)));
    if has_body {
        return (
            Response::text(413, "request bodies are not accepted"),
            is_head,
            false,
        );
    }
    let cors = cors_origin(head, &shared.config);
    let mut response = route(method, target, head, shared, cors.as_deref());
    if let Some(origin) = &cors {
        response
            .headers
            .push(("Access-Control-Allow-Origin", origin.clone()));
        response.headers.push((
            "Access-Control-Expose-Headers",
            "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified".into(),
        ));
    }
    if head.get("origin").is_some() {
        response.headers.push(("Vary", "Origin".into()));
    }
    (response, is_head, keep_alive)
}

/// The value for `Access-Control-Allow-Origin`, when the request's origin may have it.
fn cors_origin(head: &Head, config: &ServerConfig) -> Option<String> {
    let origin = head.get("origin")?.trim();
    if config.cors_origins.iter().any(|o| o == "*") {
        return Some("*".into());
    }
    let allowed = config
        .cors_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        || head
            .get("host")
            .is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")));
    allowed.then(|| origin.to_string())
}

fn route(method: &str, target: &str, head: &Head, shared: &Shared, cors: Option<&str>) -> Response {
    if method == "OPTIONS" {
        return preflight(head, cors);
    }
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "only GET, HEAD and OPTIONS are served")
            .header("Allow", "GET, HEAD, OPTIONS");
    }
    if !target.starts_with('/') {
        return Response::text(400, "request target must be an absolute path");
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    if path == "/models.json" {
        let listing = shared.lister.list(&shared.mounts[0].root);
        let body = serde_json::to_vec_pretty(&listing).unwrap_or_default();
        let mut r = Response::new(200)
            .header("Content-Type", "application/json")
            .header("Cache-Control", "no-cache");
        r.length = body.len() as u64;
        r.body = Body::Bytes(body);
        return r;
    }
    let mut refusal = Refusal::NotFound;
    for mount in &shared.mounts {
        match mount.resolve(path) {
            Ok(file) => return serve_file(method, head, &file),
            Err(Refusal::NotFound) => {}
            Err(r) => refusal = r,
        }
    }
    let text = match refusal {
        Refusal::BadRequest => "malformed percent-encoding",
        Refusal::Forbidden => "forbidden path",
        Refusal::NotFound => "not found",
    };
    Response::text(refusal.status(), text)
}

fn preflight(head: &Head, cors: Option<&str>) -> Response {
    let requested = head.get("access-control-request-method");
    if head.get("origin").is_none() || requested.is_none() {
        return Response::new(204).header("Allow", "GET, HEAD, OPTIONS");
    }
    let method_ok = matches!(requested, Some("GET" | "HEAD"));
    if cors.is_none() || !method_ok {
        return Response::text(403, "cross-origin request not allowed");
    }
    Response::new(204)
        .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        .header(
            "Access-Control-Allow-Headers",
            "Range, If-Range, If-None-Match, If-Modified-Since",
        )
        .header("Access-Control-Max-Age", "600")
}

fn serve_file(method: &str, head: &Head, path: &std::path::Path) -> Response {
    let file = match ServedFile::open(path) {
        Ok(f) => f,
        Err(_) => return Response::text(404, "not found"),
    };
    let common = |status: u16| {
        Response::new(status)
            .header("ETag", file.etag.clone())
            .header("Last-Modified", file.last_modified.clone())
            .header("Accept-Ranges", "bytes")
    };
    let not_modified = match head.get("if-none-match") {
        Some(inm) => inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == file.etag),
        None => head.get("if-modified-since") == Some(file.last_modified.as_str()),
    };
    if not_modified {
        return common(304);
    }
    let range_applies = method == "GET"
        && match head.get("if-range") {
            None => true,
            // Entity tags need strong comparison: a weak tag never matches.
            Some(v) if v.starts_with('"') || v.starts_with("W/") => v == file.etag,
            Some(v) => v == file.last_modified,
        };
    let range = match head.get("range") {
        Some(v) if range_applies => parse_range(v, file.len),
        _ => RangeRequest::Ignore,
    };
    let len = file.len;
    let (mut r, start, count) = match range {
        RangeRequest::Single { start, end } => (
            common(206).header("Content-Range", format!("bytes {start}-{}/{len}", end - 1)),
            start,
            end - start,
        ),
        RangeRequest::Unsatisfiable => {
            return common(416)
                .header("Content-Range", format!("bytes */{len}"))
                .header("Content-Type", "text/plain; charset=utf-8")
        }
        RangeRequest::Ignore | RangeRequest::Multiple => (common(200), 0, len),
    };
    r = r.header("Content-Type", file.content_type);
    r.length = count;
    r.body = Body::File {
        file: file.file,
        start,
        len: count,
    };
    r
}

fn send(w: &mut TcpStream, r: Response, is_head: bool, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    head.push_str(&format!(
        "Date: {}\r\nServer: sluice/{}\r\n",
        http_date(now.as_secs()),
        env!("CARGO_PKG_VERSION")
    ));
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // 204 and 304 carry no Content-Length body framing.
    if !matches!(r.status, 204 | 304) {
        head.push_str(&format!("Content-Length: {}\r\n", r.length));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if is_head {
        return Ok(());
    }
    match r.body {
        Body::Empty => {}
        Body::Bytes(b) => w.write_all(&b)?,
        Body::File {
            mut file,
            start,
            len,
        } => {
            file.seek(SeekFrom::Start(start))?;
            let copied = io::copy(&mut (&mut file).take(len), w)?;
            if copied != len {
                // The file shrank under us: the framing is broken, so drop the connection.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while sending",
                ));
            }
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        _ => "",
    }
}
