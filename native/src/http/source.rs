//! An HTTP resource as a [`ByteSource`], and the opener that turns `http://` paths into one.
//!
//! Opening probes the length and remembers the `ETag`/`Last-Modified` (following redirects
//! first). Reads run on worker threads over a pool of keep-alive connections, so many reads
//! can be in flight from one task or from several threads. [`ByteSource::read_many`] plans a
//! batch of ranges into few requests (adjacent and overlapping ranges merged, long ones split
//! for parallel fetching) before dispatching them all at once.

use super::client::{Client, HttpConfig, Probe, Validator};
use super::plan::{assemble, plan};
use super::pool::spawn;
use super::url::HttpUrl;
use sluice_core::gguf::SourceOpener;
use sluice_core::source::{check_range, ByteSource, LocalBoxFuture};
use sluice_core::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One remote file read by HTTP range requests.
pub struct HttpSource {
    client: Arc<Client>,
    len: u64,
    validator: Arc<Validator>,
}

/// Request counters of one source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpSourceStats {
    /// HTTP requests sent (probes and retries included).
    pub requests: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    /// Body bytes received by successful range reads.
    pub bytes: u64,
}

impl HttpSource {
    /// Opens `url` (blocking): follows redirects, learns the length and validators.
    pub fn open(url: &str, config: HttpConfig) -> Result<HttpSource> {
        let mut target = HttpUrl::parse(url).map_err(|e| Error::io(url, e))?;
        for _ in 0..=config.max_redirects {
            let client = Client::new(target.clone(), url.to_string(), config.clone());
            match client.probe()? {
                Probe::Found(info) => {
                    return Ok(HttpSource {
                        client: Arc::new(client),
                        len: info.len,
                        validator: Arc::new(info.validator),
                    })
                }
                Probe::Redirect(location) => {
                    target = target
                        .join_location(&location)
                        .map_err(|e| Error::io(url, format!("redirect: {e}")))?;
                }
            }
        }
        Err(Error::io(
            url,
            format!("more than {} redirects", config.max_redirects),
        ))
    }

    /// The URL requests go to (after redirects).
    pub fn final_url(&self) -> String {
        self.client.url.to_string()
    }

    /// The validators remembered at open.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    pub fn stats(&self) -> HttpSourceStats {
        let s = &self.client.stats;
        HttpSourceStats {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
        }
    }

    /// Reads `len` bytes at `offset` on the calling thread (one request per
    /// `max_request_bytes`, no worker threads involved).
    pub fn read_blocking(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        check_range(&self.client.name, self.len, offset, len)?;
        let step = self.client.config.max_request_bytes.max(1);
        let end = offset + len as u64;
        let mut out = Vec::with_capacity(len);
        let mut at = offset;
        while at < end {
            let piece_end = end.min(at + step);
            let mut piece = self
                .client
                .read_range(at, piece_end, self.len, &self.validator)?;
            if out.is_empty() {
                out = std::mem::take(&mut piece);
                out.reserve(len - out.len());
            } else {
                out.extend_from_slice(&piece);
            }
            at = piece_end;
        }
        Ok(out)
    }

    async fn read_batch(&self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>> {
        for &(offset, len) in ranges {
            check_range(&self.client.name, self.len, offset, len)?;
        }
        let cfg = &self.client.config;
        let fetches = plan(ranges, cfg.coalesce_gap, cfg.max_request_bytes);
        let receivers: Vec<_> = fetches
            .iter()
            .map(|f| {
                let client = Arc::clone(&self.client);
                let validator = Arc::clone(&self.validator);
                let (start, end, total) = (f.start, f.end, self.len);
                spawn(move || client.read_range(start, end, total, &validator))
            })
            .collect();
        let mut bodies = Vec::with_capacity(receivers.len());
        let mut first_error = None;
        for (f, r) in fetches.iter().zip(receivers) {
            match r.await {
                Some(Ok(body)) => bodies.push(body),
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                    bodies.push(Vec::new());
                }
                None => {
                    first_error.get_or_insert(Error::io(
                        &self.client.name,
                        format!("bytes {}-{}: fetch worker panicked", f.start, f.end - 1),
                    ));
                    bodies.push(Vec::new());
                }
            }
        }
        // Every request is awaited before reporting, so no fetch outlives the call.
        if let Some(e) = first_error {
            return Err(e);
        }
        if let ([(offset, len)], [f]) = (ranges, fetches.as_slice()) {
            if f.start == *offset && f.end - f.start == *len as u64 {
                return Ok(vec![bodies.pop().unwrap_or_default()]);
            }
        }
        Ok(ranges
            .iter()
            .map(|&(offset, len)| assemble(&fetches, &bodies, offset, len))
            .collect())
    }
}

impl ByteSource for HttpSource {
    fn name(&self) -> &str {
        &self.client.name
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>>> {
        Box::pin(async move {
            let mut out = self.read_batch(&[(offset, len)]).await?;
            Ok(out.pop().unwrap_or_default())
        })
    }

    fn read_many<'a>(
        &'a self,
        ranges: &'a [(u64, usize)],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(self.read_batch(ranges))
    }
}

/// Opens `http://` URLs as [`HttpSource`]s.
#[derive(Clone, Debug, Default)]
pub struct HttpOpener {
    pub config: HttpConfig,
}

impl SourceOpener for HttpOpener {
    fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
        let config = self.config.clone();
        let url = path.to_string();
        Box::pin(async move {
            let opened = spawn(move || HttpSource::open(&url, config)).await;
            match opened {
                Some(Ok(source)) => Ok(Arc::new(source) as Arc<dyn ByteSource>),
                Some(Err(e)) => Err(e),
                None => Err(Error::io(path, "opening panicked")),
            }
        })
    }
}

/// GETs a small document at `url` (a manifest, a listing); `Ok(None)` when it does not exist.
pub fn fetch_document(url: &str, limit: usize, config: &HttpConfig) -> Result<Option<Vec<u8>>> {
    let target = HttpUrl::parse(url).map_err(|e| Error::io(url, e))?;
    Client::new(target, url.to_string(), config.clone()).get_document(limit)
}
