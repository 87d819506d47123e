//! Load: 20 480 range requests from 32 concurrent clients against `sluice serve` on loopback,
//! every answer checked byte for byte; zero errors allowed. Prints p50/p99 latency and
//! requests per second (`cargo test -p sluice-tests --test http_load -- --nocapture`).

use sluice_native::http::server::{start, ServerConfig};
use sluice_native::http::{HttpConfig, HttpSource};
use sluice_tests::gguf_build::{noise, scratch_dir};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 640;
const FILE_BYTES: usize = 8 << 20;

#[test]
fn twenty_thousand_range_requests() {
    let dir = scratch_dir("http-load");
    let data = Arc::new(noise(5, FILE_BYTES));
    std::fs::write(dir.join("weights.bin"), &*data).unwrap();
    let mut config = ServerConfig::new(&dir);
    config.port = 0;
    config.max_connections = 64;
    let server = start(config).unwrap();
    let url = format!("{}/weights.bin", server.base_url());
    let client_config = HttpConfig {
        max_connections: CLIENTS,
        ..HttpConfig::default()
    };
    let source = Arc::new(HttpSource::open(&url, client_config).unwrap());

    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (source, data) = (Arc::clone(&source), Arc::clone(&data));
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
                let mut state = 0x9E37_79B9u64 ^ (c as u64) << 32;
                let mut errors = 0usize;
                for _ in 0..REQUESTS_PER_CLIENT {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let len = 1 + (state >> 33) as usize % (64 << 10);
                    let offset = (state >> 13) as usize % (FILE_BYTES - len);
                    let t = Instant::now();
                    match source.read_blocking(offset as u64, len) {
                        Ok(bytes) if bytes[..] == data[offset..offset + len] => {}
                        _ => errors += 1,
                    }
                    latencies.push(t.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "http load: {} requests, {CLIENTS} clients, {errors} errors, {:.1} s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    );
    assert_eq!(errors, 0);
    assert_eq!(latencies.len(), CLIENTS * REQUESTS_PER_CLIENT);
    assert_eq!(source.stats().retries, 0);
    let _ = std::fs::remove_dir_all(dir);
}
