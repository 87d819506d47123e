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
    /// Also serve a static directory at `/` (after the models). `--www` with no value serves
    /// the web demo: the `www/` directory of the sluice checkout (built with web/build.sh).
    /// Give it after DIR, or as `--www=PATH`.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub www: Option<Option<PathBuf>>,
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
    let www = match args.www {
        Some(None) => Some(find_demo().ok_or_else(|| {
            anyhow::anyhow!(
                "--www: cannot find the demo page (www/index.html) near {} or in the source tree; pass --www=PATH",
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })?),
        Some(Some(dir)) => Some(dir),
        None => None,
    };
    if let Some(dir) = &www {
        if dir.join("index.html").is_file() && !dir.join("pkg").join("sluice_web.js").is_file() {
            eprintln!(
                "note: {} has no pkg/sluice_web.js: build the wasm package with web/build.sh",
                dir.display()
            );
        }
    }
    config.www = www.clone();
    config.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
    config.log_requests = args.verbose;
    let server = start(config)?;
    let url = server.base_url();
    println!(
        "serving {} at {url}/ (models: {url}/models.json)",
        args.dir.display()
    );
    if let Some(dir) = &www {
        println!("demo page ({}): open {url}/ in a browser", dir.display());
    }
    server.wait();
    Ok(())
}

/// The demo page for a bare `--www`: `www/` beside the executable or up to three directories
/// above it (an installed tree, `target/release/`), else the source tree it was built from.
fn find_demo() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let near_exe = exe.ancestors().skip(1).take(4).map(|d| d.join("www"));
    let source_tree = std::iter::once(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www"));
    near_exe
        .chain(source_tree)
        .find(|d| d.join("index.html").is_file())
        .and_then(|d| d.canonicalize().ok())
}
