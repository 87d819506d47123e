//! Fault injection for the HTTP range client: a loopback server that misbehaves on cue
//! (drops connections mid-body, answers 5xx, short bodies, wrong Content-Range, 200 instead
//! of 206, stalls, corrupt bytes, a changed ETag). Every case must end in the right bytes
//! after retries or in a clear error naming the URL and range — never wrong bytes, never a
//! hang (each test runs under a watchdog).

use sluice_core::gguf::GgufModel;
use sluice_core::source::{block_on, ByteSource};
use sluice_native::http::{HttpConfig, HttpOpener, HttpSource};
use sluice_native::manifest::{Manifest, VerifyingOpener};
use sluice_native::open::open_model;
use sluice_tests::gguf_build::{base_metadata, encode, moe_tensors, noise, scratch_dir};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server does with the next range request.
#[derive(Clone, Debug)]
enum Fault {
    Honest,
    /// Send the head and this many body bytes, then close.
    DropAfter(usize),
    /// Answer with this status and no body.
    Status(u16),
    /// Correct Content-Range, but one byte less body (and Content-Length saying so).
    ShortBody,
    /// Content-Range (and body) starting one byte later than asked.
    WrongRange,
    /// 200 with the whole resource.
    Full200,
    /// Say nothing for this long, then close.
    Stall(Duration),
    /// Correct framing, one flipped byte in the middle of the body.
    Corrupt,
    /// Correct answer but a different ETag.
    NewEtag,
    /// Correct answer, then close the connection without announcing it.
    SilentClose,
    /// Correct answer after a delay (for concurrency checks).
    Slow(Duration),
}

struct FakeServer {
    url: String,
    script: Arc<Mutex<VecDeque<Fault>>>,
    /// Used when the script is empty.
    default: Arc<Mutex<Fault>>,
    connections: Arc<AtomicUsize>,
    range_requests: Arc<AtomicUsize>,
}

impl FakeServer {
    fn start(data: Vec<u8>, path: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let server = FakeServer {
            url,
            script: Arc::default(),
            default: Arc::new(Mutex::new(Fault::Honest)),
            connections: Arc::default(),
            range_requests: Arc::default(),
        };
        let data = Arc::new(data);
        let (script, default) = (server.script.clone(), server.default.clone());
        let (connections, ranges) = (server.connections.clone(), server.range_requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let (data, script, default, ranges) = (
                    data.clone(),
                    script.clone(),
                    default.clone(),
                    ranges.clone(),
                );
                std::thread::spawn(move || serve(stream, &data, &script, &default, &ranges));
            }
        });
        server
    }

    fn push(&self, faults: &[Fault]) {
        self.script.lock().unwrap().extend(faults.iter().cloned());
    }

    fn always(&self, fault: Fault) {
        *self.default.lock().unwrap() = fault;
    }
}

fn serve(
    stream: TcpStream,
    data: &[u8],
    script: &Mutex<VecDeque<Fault>>,
    default: &Mutex<Fault>,
    ranges: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Range: bytes=") {
                let (a, b) = v.split_once('-').unwrap();
                range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap() + 1));
            }
        }
        let total = data.len();
        if request_line.contains(" /old.gguf ") {
            let moved = "HTTP/1.1 302 Found\r\nLocation: /m.gguf\r\nContent-Length: 0\r\n\r\n";
            if out.write_all(moved.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if request_line.starts_with("HEAD /nohead") {
            let refused = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
            if out.write_all(refused.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if request_line.starts_with("HEAD") {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nETag: \"v1\"\r\nAccept-Ranges: bytes\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let Some((start, end)) = range else {
            let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        ranges.fetch_add(1, Ordering::SeqCst);
        let fault = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| default.lock().unwrap().clone());
        let body = &data[start..end];
        let partial = |etag: &str, first: usize, last_excl: usize, len: usize| {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{}/{total}\r\nContent-Length: {len}\r\nETag: \"{etag}\"\r\n\r\n",
                last_excl - 1
            )
        };
        let ok = match fault {
            Fault::Honest | Fault::SilentClose | Fault::Slow(_) => {
                if let Fault::Slow(d) = fault {
                    std::thread::sleep(d);
                }
                let sent = out
                    .write_all(partial("v1", start, end, body.len()).as_bytes())
                    .and_then(|_| out.write_all(body));
                if let Fault::SilentClose = fault {
                    let _ = out.shutdown(Shutdown::Both);
                    return;
                }
                sent.is_ok()
            }
            Fault::DropAfter(n) => {
                let _ = out.write_all(partial("v1", start, end, body.len()).as_bytes());
                let _ = out.write_all(&body[..n.min(body.len())]);
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            Fault::Status(s) => {
                let _ = out.write_all(
                    format!("HTTP/1.1 {s} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
                return;
            }
            Fault::ShortBody => {
                let n = body.len() - 1;
                out.write_all(partial("v1", start, end, n).as_bytes())
                    .and_then(|_| out.write_all(&body[..n]))
                    .is_ok()
            }
            Fault::WrongRange => {
                let shifted = &data[start + 1..(end + 1).min(total)];
                out.write_all(
                    partial("v1", start + 1, (end + 1).min(total), shifted.len()).as_bytes(),
                )
                .and_then(|_| out.write_all(shifted))
                .is_ok()
            }
            Fault::Full200 => {
                let head =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nETag: \"v1\"\r\n\r\n");
                out.write_all(head.as_bytes())
                    .and_then(|_| out.write_all(data))
                    .is_ok()
            }
            Fault::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Fault::Corrupt => {
                let mut bad = body.to_vec();
                let mid = bad.len() / 2;
                bad[mid] ^= 0x5a;
                out.write_all(partial("v1", start, end, bad.len()).as_bytes())
                    .and_then(|_| out.write_all(&bad))
                    .is_ok()
            }
            Fault::NewEtag => out
                .write_all(partial("v2", start, end, body.len()).as_bytes())
                .and_then(|_| out.write_all(body))
                .is_ok(),
        };
        if !ok {
            return;
        }
    }
}

fn quick_config() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(1),
        max_attempts: 4,
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        max_connections: 4,
        ..HttpConfig::default()
    }
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit`.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("test hung past its watchdog")
}

fn data() -> Vec<u8> {
    noise(42, 200_000)
}

/// Reads `offset..offset+len` and checks the bytes, returning the source's retry count.
fn read_ok(server: &FakeServer, offset: usize, len: usize) -> u64 {
    let src = HttpSource::open(&server.url, quick_config()).unwrap();
    let got = block_on(src.read_at(offset as u64, len)).unwrap();
    assert_eq!(got, data()[offset..offset + len], "wrong bytes");
    src.stats().retries
}

/// Reads and expects an error mentioning the URL, the byte range and `needle`.
fn read_err(server: &FakeServer, offset: usize, len: usize, needle: &str) -> String {
    let src = HttpSource::open(&server.url, quick_config()).unwrap();
    let err = block_on(src.read_at(offset as u64, len))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&server.url),
        "error does not name the URL: {err}"
    );
    let range = format!("bytes {offset}-{}", offset + len - 1);
    assert!(err.contains(&range), "error does not name {range}: {err}");
    assert!(err.contains(needle), "error lacks {needle:?}: {err}");
    err
}

#[test]
fn dropped_connections_are_retried() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::DropAfter(0), Fault::DropAfter(5000)]);
        assert_eq!(read_ok(&s, 1000, 20_000), 2);
        s.always(Fault::DropAfter(10));
        read_err(&s, 0, 1000, "gave up after 4 attempts");
    });
}

#[test]
fn server_errors_are_retried() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::Status(500), Fault::Status(503)]);
        assert_eq!(read_ok(&s, 0, 4096), 2);
        s.always(Fault::Status(503));
        read_err(&s, 10, 10, "HTTP 503");
        // A 4xx is final: no retry.
        s.always(Fault::Status(403));
        let before = s.range_requests.load(Ordering::SeqCst);
        read_err(&s, 10, 10, "HTTP 403");
        assert_eq!(s.range_requests.load(Ordering::SeqCst) - before, 1);
    });
}

#[test]
fn short_bodies_are_retried() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::ShortBody]);
        assert_eq!(read_ok(&s, 500, 3000), 1);
        s.always(Fault::ShortBody);
        read_err(&s, 500, 3000, "Content-Length 2999");
    });
}

#[test]
fn wrong_content_range_is_never_used() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::WrongRange]);
        assert_eq!(read_ok(&s, 100, 100), 1);
        s.always(Fault::WrongRange);
        read_err(&s, 100, 100, "Content-Range");
    });
}

#[test]
fn full_200_answers_to_range_requests() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::Full200]);
        assert_eq!(read_ok(&s, 100, 100), 1);
        s.always(Fault::Full200);
        read_err(&s, 100, 100, "answered 200");
        // Asking for the whole resource, a 200 is the right answer.
        let src = HttpSource::open(&s.url, quick_config()).unwrap();
        assert_eq!(block_on(src.read_at(0, data().len())).unwrap(), data());
    });
}

#[test]
fn stalls_time_out_and_are_retried() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::Stall(Duration::from_secs(2))]);
        assert_eq!(read_ok(&s, 0, 100), 1);
        s.always(Fault::Stall(Duration::from_secs(20)));
        let started = Instant::now();
        read_err(&s, 0, 100, "timeout");
        // 4 attempts × 1 s plus backoff; nowhere near the server's 20 s stall each.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn changed_resource_is_a_clear_error() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.push(&[Fault::NewEtag]);
        let before = s.range_requests.load(Ordering::SeqCst);
        read_err(&s, 0, 100, "changed while in use");
        assert_eq!(
            s.range_requests.load(Ordering::SeqCst) - before,
            1,
            "a changed resource is not retried"
        );
    });
}

#[test]
fn silently_closed_keep_alive_connections_are_replaced() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        s.always(Fault::SilentClose);
        let src = HttpSource::open(&s.url, quick_config()).unwrap();
        for i in 0..10 {
            let got = block_on(src.read_at(i * 1000, 1000)).unwrap();
            assert_eq!(got, data()[i as usize * 1000..(i as usize + 1) * 1000]);
        }
        assert_eq!(
            src.stats().retries,
            0,
            "a stale pooled connection is not a failed attempt"
        );
    });
}

#[test]
fn connections_are_reused_and_reads_overlap() {
    watchdog(Duration::from_secs(20), || {
        let s = FakeServer::start(data(), "/m.gguf");
        let src = HttpSource::open(&s.url, quick_config()).unwrap();
        for i in 0..50 {
            assert_eq!(
                block_on(src.read_at(i * 100, 100)).unwrap(),
                data()[i as usize * 100..][..100]
            );
        }
        assert!(
            s.connections.load(Ordering::SeqCst) <= 2,
            "keep-alive not used: {} connections",
            s.connections.load(Ordering::SeqCst)
        );

        // Adjacent and overlapping ranges asked together become one request.
        let before = s.range_requests.load(Ordering::SeqCst);
        let ranges = [(1000u64, 500usize), (1500, 500), (1800, 700)];
        let got = block_on(src.read_many(&ranges)).unwrap();
        for (&(o, l), g) in ranges.iter().zip(&got) {
            assert_eq!(g[..], data()[o as usize..o as usize + l]);
        }
        assert_eq!(s.range_requests.load(Ordering::SeqCst) - before, 1);

        // Separate ranges are fetched in parallel: 4 × 500 ms answers take well under 2 s.
        s.always(Fault::Slow(Duration::from_millis(500)));
        let ranges = [(0u64, 10usize), (50_000, 10), (100_000, 10), (150_000, 10)];
        let started = Instant::now();
        let got = block_on(src.read_many(&ranges)).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "not parallel: {:?}",
            started.elapsed()
        );
        for (&(o, l), g) in ranges.iter().zip(&got) {
            assert_eq!(g[..], data()[o as usize..o as usize + l]);
        }
    });
}

#[test]
fn corrupt_bytes_are_caught_by_the_manifest() {
    watchdog(Duration::from_secs(30), || {
        let dir = scratch_dir("faults-manifest");
        let bytes = encode(&base_metadata("deepseek2"), &moe_tensors(2, 4, 32));
        let path = dir.join("m.gguf");
        std::fs::write(&path, &bytes).unwrap();
        let local = open_model(path.to_str().unwrap(), Default::default()).unwrap();
        let manifest = Arc::new(Manifest::build(&local, 2).unwrap());

        let s = FakeServer::start(bytes, "/m.gguf");
        let http = HttpOpener {
            config: quick_config(),
        };
        let verifying = VerifyingOpener {
            inner: &http,
            manifest: manifest.clone(),
        };
        let model = block_on(GgufModel::open(&s.url, &verifying)).unwrap();
        let t = model.tensor("blk.1.ffn_up_exps.weight").unwrap().clone();
        let slab = t.info.nbytes().unwrap() / 4;
        let expected = local
            .tensor_bytes(local.tensor(t.name()).unwrap())
            .unwrap()
            .unwrap()[(3 * slab) as usize..(4 * slab) as usize]
            .to_vec();

        // Corrupted once: verification rejects it, the re-read is good.
        s.push(&[Fault::Corrupt]);
        let got = block_on(model.read_tensor_range(&t, 3 * slab, slab as usize)).unwrap();
        assert_eq!(got, expected);

        // Corrupted every time: an error naming the tensor and expert, never the bytes.
        s.always(Fault::Corrupt);
        let err = block_on(model.read_tensor_range(&t, 3 * slab, slab as usize))
            .unwrap_err()
            .to_string();
        assert!(err.contains("blk.1.ffn_up_exps.weight expert 3"), "{err}");
        assert!(err.contains("does not match the manifest"), "{err}");
        assert!(err.contains(&s.url), "{err}");
        let err = block_on(model.read_tensor_range(&t, 0, t.info.nbytes().unwrap() as usize))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tensor blk.1.ffn_up_exps.weight"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn missing_resources_fail_fast() {
    watchdog(Duration::from_secs(10), || {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/m.gguf", closed.local_addr().unwrap());
        drop(closed);
        let err = HttpSource::open(&url, quick_config())
            .err()
            .expect("nothing listens there")
            .to_string();
        assert!(
            err.contains(&url) && err.contains("cannot connect"),
            "{err}"
        );
        let err = HttpSource::open("https://127.0.0.1/m.gguf", quick_config())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("https is not supported"), "{err}");
    });
}

#[test]
fn redirects_are_followed_when_opening() {
    watchdog(Duration::from_secs(10), || {
        let s = FakeServer::start(data(), "/m.gguf");
        let old = s.url.replace("/m.gguf", "/old.gguf");
        let src = HttpSource::open(&old, quick_config()).unwrap();
        assert_eq!(src.final_url(), s.url);
        assert_eq!(src.name(), old, "errors keep naming the URL the user gave");
        assert_eq!(block_on(src.read_at(7, 70)).unwrap(), data()[7..77]);
    });
}

#[test]
fn length_comes_from_a_range_probe_when_head_is_refused() {
    watchdog(Duration::from_secs(10), || {
        let s = FakeServer::start(data(), "/nohead.gguf");
        let src = HttpSource::open(&s.url, quick_config()).unwrap();
        assert_eq!(src.len(), data().len() as u64);
        assert_eq!(src.validator().etag.as_deref(), Some("\"v1\""));
        assert_eq!(block_on(src.read_at(100, 10)).unwrap(), data()[100..110]);
    });
}
