//! `sluice serve DIR`: host a directory of GGUF models over HTTP (ranges, HEAD, ETag, CORS,
//! `/models.json`), for `sluice run http://…`, the browser demo, or any range client.

use crate::http::server::{start, ServerConfig};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory of GGUF models (searched recursively for the listing).
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Allow cross-origin requests from ORIGIN (repeatable; `*` for any). By default only
    /// the server's own origin gets CORS headers.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Connections served at once (more wait in the listen queue).
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
    /// Also serve this static directory at `/` (after the models), e.g. the web demo.
    #[arg(long, value_name = "DIR")]
    pub www: Option<PathBuf>,
    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, default_value_t = 15)]
    pub idle_timeout: u64,
    /// Print one line per request.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(&args.dir);
    config.host = args.host;
    config.port = args.port;
    config.cors_origins = args.cors_origins;
    config.max_connections = args.max_connections.max(1);
    config.www = args.www;
    config.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
    config.log_requests = args.verbose;
    let server = start(config)?;
    let url = server.base_url();
    println!(
        "serving {} at {url}/ (models: {url}/models.json)",
        args.dir.display()
    );
    server.wait();
    Ok(())
}
