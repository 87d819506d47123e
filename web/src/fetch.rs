//! Model bytes over `fetch`: a [`ByteSource`] that reads a URL with HTTP range requests.
//!
//! Opening a URL sends a one-byte range request to learn the length and the validators
//! (`ETag`, `Last-Modified`); every later answer must carry the same validators and exactly
//! the `Content-Range` asked for, and its body must have exactly the bytes asked for (see
//! [`crate::http_range`]). Network errors, 5xx, 408 and 429 are retried with exponential
//! backoff; other failures are final. `read_many` merges touching ranges and has all of its
//! requests in flight at once (the browser queues past its per-host connection limit).
//! The bytes land in the wasm heap only as long as the caller keeps them.

use crate::http_range::{self, check_range_answer, check_validator, probe_length, Failure};
use crate::join::join_all;
use crate::js::{describe, sleep};
use js_sys::{Function, Uint8Array};
use sluice_core::gguf::SourceOpener;
use sluice_core::source::{check_range, ByteSource, LocalBoxFuture};
use sluice_core::{Error, Result};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> js_sys::Promise;
}

/// Attempts per request before giving up on transient failures.
const MAX_ATTEMPTS: u32 = 4;
const BACKOFF_FIRST_MS: i32 = 200;
const BACKOFF_MAX_MS: i32 = 3000;

/// Counters shared by every source of a session, and the load-progress callback.
#[derive(Default)]
pub struct FetchCounters {
    pub bytes: Cell<u64>,
    pub requests: Cell<u64>,
    pub retries: Cell<u64>,
    /// Bytes the load is expected to read (for progress); 0 while unknown.
    pub expected: Cell<u64>,
    pub on_progress: std::cell::RefCell<Option<Function>>,
}

impl FetchCounters {
    fn add_bytes(&self, n: u64) {
        self.bytes.set(self.bytes.get() + n);
        if let Some(f) = self.on_progress.borrow().as_ref() {
            let _ = f.call2(
                &JsValue::NULL,
                &JsValue::from_f64(self.bytes.get() as f64),
                &JsValue::from_f64(self.expected.get() as f64),
            );
        }
    }
}

type Validator = (Option<String>, Option<String>);

/// One URL read by range requests.
pub struct FetchSource {
    url: String,
    len: u64,
    validator: Validator,
    counters: Rc<FetchCounters>,
}

struct Answer {
    status: u16,
    headers: Headers,
    response: Response,
}

fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

fn validator_of(headers: &Headers) -> Validator {
    (header(headers, "etag"), header(headers, "last-modified"))
}

/// Sends `GET url` with `Range: bytes=start-(end-1)`.
async fn get_range(url: &str, start: u64, end: u64) -> Result<Answer, Failure> {
    let headers = Headers::new().map_err(|e| Failure::Final(describe(&e)))?;
    headers
        .set("Range", &format!("bytes={start}-{}", end - 1))
        .map_err(|e| Failure::Final(describe(&e)))?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    let request =
        Request::new_with_str_and_init(url, &init).map_err(|e| Failure::Final(describe(&e)))?;
    let response: Response = JsFuture::from(global_fetch(&request))
        .await
        .map_err(|e| Failure::Transient(format!("network error: {}", describe(&e))))?
        .dyn_into()
        .map_err(|_| Failure::Final("fetch did not return a Response".into()))?;
    Ok(Answer {
        status: response.status(),
        headers: response.headers(),
        response,
    })
}

async fn body(answer: &Answer, want: u64) -> Result<Vec<u8>, Failure> {
    let promise = answer
        .response
        .array_buffer()
        .map_err(|e| Failure::Transient(describe(&e)))?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|e| Failure::Transient(format!("reading the body: {}", describe(&e))))?;
    let bytes = Uint8Array::new(&buffer);
    if bytes.length() as u64 != want {
        return Err(Failure::Transient(format!(
            "short body: {} of {want} bytes",
            bytes.length()
        )));
    }
    Ok(bytes.to_vec())
}

/// Runs `attempt` until it succeeds, fails finally, or has failed `MAX_ATTEMPTS` times.
async fn with_retries<T, F, Fut>(
    name: &str,
    what: &str,
    counters: &FetchCounters,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut delay = BACKOFF_FIRST_MS;
    let mut tries = 0;
    loop {
        tries += 1;
        counters.requests.set(counters.requests.get() + 1);
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Failure::Final(msg)) => return Err(Error::io(name, format!("{what}: {msg}"))),
            Err(Failure::Transient(msg)) if tries >= MAX_ATTEMPTS => {
                return Err(Error::io(
                    name,
                    format!("{what}: {msg} (gave up after {tries} attempts)"),
                ))
            }
            Err(Failure::Transient(_)) => {
                counters.retries.set(counters.retries.get() + 1);
                sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX_MS);
            }
        }
    }
}

impl FetchSource {
    /// Opens `url`: learns its length and validators with a one-byte range request.
    pub async fn open(url: &str, counters: Rc<FetchCounters>) -> Result<FetchSource> {
        let (len, validator) = with_retries(url, "length probe", &counters, || async {
            let answer = get_range(url, 0, 1).await?;
            let cr = header(&answer.headers, "content-range");
            let len = probe_length(answer.status, cr.as_deref())?;
            if len > 0 {
                body(&answer, 1).await?;
            }
            Ok((len, validator_of(&answer.headers)))
        })
        .await?;
        counters.add_bytes(len.min(1));
        Ok(FetchSource {
            url: url.to_string(),
            len,
            validator,
            counters,
        })
    }

    async fn read_span(&self, start: u64, end: u64) -> Result<Vec<u8>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let what = format!("bytes {start}-{}", end - 1);
        let data = with_retries(&self.url, &what, &self.counters, || async move {
            let answer = get_range(&self.url, start, end).await?;
            let cr = header(&answer.headers, "content-range");
            check_range_answer(answer.status, cr.as_deref(), start, end, self.len)?;
            check_validator(&self.validator, &validator_of(&answer.headers))?;
            body(&answer, end - start).await
        })
        .await?;
        self.counters.add_bytes(data.len() as u64);
        Ok(data)
    }
}

impl ByteSource for FetchSource {
    fn name(&self) -> &str {
        &self.url
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>> {
        Box::pin(async move {
            check_range(&self.url, self.len, offset, len)?;
            self.read_span(offset, offset + len as u64).await
        })
    }

    fn read_many<'a>(
        &'a self,
        ranges: &'a [(u64, usize)],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            for &(offset, len) in ranges {
                check_range(&self.url, self.len, offset, len)?;
            }
            let (spans, place) = http_range::merge_ranges(ranges);
            let reads: Vec<LocalBoxFuture<'_, Result<Vec<u8>>>> = spans
                .iter()
                .map(|&(start, end)| Box::pin(self.read_span(start, end)) as LocalBoxFuture<'_, _>)
                .collect();
            let mut span_bytes = Vec::with_capacity(spans.len());
            for r in join_all(reads).await {
                span_bytes.push(r?);
            }
            Ok(ranges
                .iter()
                .zip(place)
                .map(|(&(_, len), (span, at))| {
                    let at = at as usize;
                    span_bytes[span][at..at + len].to_vec()
                })
                .collect())
        })
    }
}

/// Opens URLs (the parts of a split model) with shared counters.
pub struct FetchOpener {
    pub counters: Rc<FetchCounters>,
}

impl SourceOpener for FetchOpener {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
        Box::pin(async move {
            let source = FetchSource::open(path, self.counters.clone()).await?;
            Ok(Arc::new(source) as Arc<dyn ByteSource>)
        })
    }
}
