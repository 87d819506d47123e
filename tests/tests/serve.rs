//! `sluice serve` over real sockets: path traversal refused, RFC 9110 range semantics, HEAD,
//! conditional requests, CORS, the model listing, the `--www` mount and the connection bound.
//! Requests are written byte for byte so that encoded attack paths reach the server unchanged.

use sluice_native::http::message::{read_head, Head};
use sluice_native::http::server::{start, ServerConfig, ServerHandle};
use sluice_tests::gguf_build::{f32_tensor, noise, scratch_dir, write_single, write_split};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

struct Reply {
    status: u16,
    head: Head,
    body: Vec<u8>,
}

/// Sends `request` (a full head, without the final blank line) and reads one response.
fn send_on(stream: &mut BufReader<TcpStream>, request: &str, is_head: bool) -> Reply {
    stream
        .get_mut()
        .write_all(format!("{request}\r\n\r\n").as_bytes())
        .unwrap();
    let head = read_head(stream).unwrap().expect("a response");
    let status: u16 = head.start_line.split(' ').nth(1).unwrap().parse().unwrap();
    let len = head.content_length().unwrap().unwrap_or(0);
    let mut body = vec![0u8; if is_head { 0 } else { len as usize }];
    stream.read_exact(&mut body).unwrap();
    Reply { status, head, body }
}

fn connect(server: &ServerHandle) -> BufReader<TcpStream> {
    let s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

fn request(server: &ServerHandle, method: &str, target: &str, headers: &[&str]) -> Reply {
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: {}", server.addr());
    for h in headers {
        text.push_str("\r\n");
        text.push_str(h);
    }
    send_on(&mut connect(server), &text, method == "HEAD")
}

fn get(server: &ServerHandle, target: &str, headers: &[&str]) -> Reply {
    request(server, "GET", target, headers)
}

const SECRET: &[u8] = b"top secret outside the served directory";

/// root/ with models, and a secret file beside root/ that must never be served.
fn layout(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = scratch_dir(test);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("blob.bin"), noise(9, 1000)).unwrap();
    std::fs::write(root.join(".hidden"), SECRET).unwrap();
    (base, root)
}

fn serve(root: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let mut config = ServerConfig::new(root);
    config.port = 0;
    config.idle_timeout = Duration::from_secs(3);
    tweak(&mut config);
    start(config).unwrap()
}

#[test]
fn never_serves_outside_the_root() {
    let (base, root) = layout("serve-traversal");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape.gguf")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("escape_dir")).unwrap();
        std::os::unix::fs::symlink(root.join("blob.bin"), root.join("alias.bin")).unwrap();
    }
    let server = serve(&root, |_| {});
    let attacks = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/..%5csecret.txt",
        "/%2e%2e%5csecret.txt",
        "/./../secret.txt",
        "/%00/../secret.txt",
        "/..%252fsecret.txt",
        "/escape.gguf",
        "/escape_dir/secret.txt",
        "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "/C:/secret.txt",
        "/.hidden",
        "/%2ehidden",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "\\..\\secret.txt",
        "http://evil/../secret.txt",
        "/..",
    ];
    for attack in attacks {
        let r = get(&server, attack, &[]);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{attack} answered {}",
            r.status
        );
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{attack} leaked the secret"
        );
    }
    // Symlinks that stay inside the root are fine.
    #[cfg(unix)]
    assert_eq!(get(&server, "/alias.bin", &[]).body, noise(9, 1000));
    assert_eq!(get(&server, "/blob.bin", &[]).status, 200);
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn range_semantics() {
    let (base, root) = layout("serve-ranges");
    let server = serve(&root, |_| {});
    let data = noise(9, 1000);
    let partial = |range: &str, first: usize, last: usize| {
        let r = get(&server, "/blob.bin", &[&format!("Range: {range}")]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.head.get("content-range").unwrap(),
            format!("bytes {first}-{last}/1000"),
            "{range}"
        );
        assert_eq!(r.body, data[first..=last], "{range}");
    };
    partial("bytes=0-99", 0, 99);
    partial("bytes=-100", 900, 999);
    partial("bytes=990-", 990, 999);
    partial("bytes=900-5000", 900, 999);
    partial("bytes=-5000", 0, 999);
    for unsatisfiable in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let r = get(&server, "/blob.bin", &[&format!("Range: {unsatisfiable}")]);
        assert_eq!(r.status, 416, "{unsatisfiable}");
        assert_eq!(r.head.get("content-range"), Some("bytes */1000"));
    }
    // Ignored: malformed, other units, several ranges (documented: whole file).
    for ignored in ["bytes=5-1", "items=0-1", "bytes=0-1,5-6", "bytes=x-"] {
        let r = get(&server, "/blob.bin", &[&format!("Range: {ignored}")]);
        assert_eq!((r.status, r.body.len()), (200, 1000), "{ignored}");
    }
    let full = get(&server, "/blob.bin", &[]);
    assert_eq!((full.status, &full.body), (200, &data));
    assert_eq!(full.head.get("accept-ranges"), Some("bytes"));
    let etag = full.head.get("etag").unwrap().to_string();
    let modified = full.head.get("last-modified").unwrap().to_string();
    assert!(etag.starts_with('"') && modified.ends_with(" GMT"));

    // If-Range: a matching validator keeps the range; a stale or weak one gives 200 full.
    let with = |if_range: &str| {
        get(
            &server,
            "/blob.bin",
            &["Range: bytes=10-19", &format!("If-Range: {if_range}")],
        )
    };
    assert_eq!(with(&etag).status, 206);
    assert_eq!(with(&modified).status, 206);
    let stale = with("\"stale-etag\"");
    assert_eq!((stale.status, stale.body.len()), (200, 1000));
    assert_eq!(with(&format!("W/{etag}")).status, 200);
    assert_eq!(with("Sun, 06 Nov 1994 08:49:37 GMT").status, 200);

    // Conditional GET.
    let r = get(&server, "/blob.bin", &[&format!("If-None-Match: {etag}")]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(
        get(&server, "/blob.bin", &["If-None-Match: \"other\""]).status,
        200
    );

    // HEAD: same headers as GET, no body, Range ignored.
    let r = request(&server, "HEAD", "/blob.bin", &["Range: bytes=0-9"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.head.content_length(), Ok(Some(1000)));
    assert_eq!(r.head.get("etag"), Some(etag.as_str()));

    assert_eq!(request(&server, "POST", "/blob.bin", &[]).status, 405);
    assert_eq!(request(&server, "DELETE", "/blob.bin", &[]).status, 405);
    assert_eq!(get(&server, "/missing.gguf", &[]).status, 404);

    // Keep-alive: several requests on one connection.
    let mut conn = connect(&server);
    for (i, byte) in data.iter().enumerate().take(5) {
        let req = format!("GET /blob.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={i}-{i}");
        assert_eq!(send_on(&mut conn, &req, false).body, [*byte]);
    }
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn cors() {
    let (base, root) = layout("serve-cors");
    let server = serve(&root, |_| {});
    let own = format!("http://{}", server.addr());
    assert_eq!(
        get(&server, "/blob.bin", &[])
            .head
            .get("access-control-allow-origin"),
        None
    );
    let r = get(&server, "/blob.bin", &["Origin: http://evil.example"]);
    assert_eq!(
        (r.status, r.head.get("access-control-allow-origin")),
        (200, None)
    );
    let r = get(&server, "/blob.bin", &[&format!("Origin: {own}")]);
    assert_eq!(
        r.head.get("access-control-allow-origin"),
        Some(own.as_str())
    );
    assert!(r
        .head
        .get("access-control-expose-headers")
        .unwrap()
        .contains("Content-Range"));
    let pre = |s: &ServerHandle, origin: &str| {
        request(
            s,
            "OPTIONS",
            "/blob.bin",
            &[
                &format!("Origin: {origin}"),
                "Access-Control-Request-Method: GET",
                "Access-Control-Request-Headers: range",
            ],
        )
    };
    assert_eq!(pre(&server, "http://evil.example").status, 403);
    let ok = pre(&server, &own);
    assert_eq!(ok.status, 204);
    assert!(ok
        .head
        .get("access-control-allow-headers")
        .unwrap()
        .contains("Range"));

    let listed = serve(&root, |c| {
        c.cors_origins = vec!["http://app.example".into()]
    });
    let r = get(
        &listed,
        "/blob.bin",
        &["Origin: http://app.example", "Range: bytes=0-0"],
    );
    assert_eq!(
        (r.status, r.head.get("access-control-allow-origin")),
        (206, Some("http://app.example"))
    );
    assert_eq!(pre(&listed, "http://app.example").status, 204);
    assert_eq!(
        get(&listed, "/blob.bin", &["Origin: http://other.example"])
            .head
            .get("access-control-allow-origin"),
        None
    );
    let any = serve(&root, |c| c.cors_origins = vec!["*".into()]);
    assert_eq!(
        get(&any, "/blob.bin", &["Origin: http://x.example"])
            .head
            .get("access-control-allow-origin"),
        Some("*")
    );
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn listing_groups_split_models() {
    let (base, root) = layout("serve-listing");
    let tensors: Vec<_> = (0..6)
        .map(|i| f32_tensor(&format!("t{i}.weight"), &[16, 4], i))
        .collect();
    write_split(&root.join("sub"), "big model", "deepseek2", &tensors, 3);
    write_single(&root, "small", "llama", &tensors[..2]);
    std::fs::write(root.join("small.manifest.json"), b"{}").unwrap();
    let orphan = write_split(&root, "orphan", "deepseek2", &tensors, 2);
    std::fs::remove_file(&orphan[1]).unwrap();
    let server = serve(&root, |_| {});
    let r = get(&server, "/models.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.head.get("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 3, "{v}");
    let big = models
        .iter()
        .find(|m| m["name"] == "sub/big model")
        .unwrap();
    assert_eq!(big["architecture"], "deepseek2");
    assert_eq!(big["complete"], true);
    let parts: Vec<&str> = big["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        (1..=3)
            .map(|i| format!("/sub/big%20model-0000{i}-of-00003.gguf"))
            .collect::<Vec<_>>()
    );
    let size: u64 = (1..=3)
        .map(|i| {
            std::fs::metadata(root.join(format!("sub/big model-0000{i}-of-00003.gguf")))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(big["size"], size);
    assert_eq!(big["manifest"], serde_json::Value::Null);
    // Every listed part URL is servable.
    for p in &parts {
        assert_eq!(request(&server, "HEAD", p, &[]).status, 200, "{p}");
    }
    let small = models.iter().find(|m| m["name"] == "small").unwrap();
    assert_eq!(
        (small["architecture"].as_str(), small["manifest"].as_str()),
        (Some("llama"), Some("/small.manifest.json"))
    );
    let orphan = models.iter().find(|m| m["name"] == "orphan").unwrap();
    assert_eq!(orphan["complete"], false);
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn www_mount_and_port_zero() {
    let (base, root) = layout("serve-www");
    let www = base.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), b"<h1>demo</h1>").unwrap();
    std::fs::write(www.join("app.wasm"), b"\0asm").unwrap();
    let server = serve(&root, |c| c.www = Some(www.clone()));
    assert_ne!(server.addr().port(), 0);
    let r = get(&server, "/", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<h1>demo</h1>"[..]));
    assert_eq!(r.head.get("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        get(&server, "/app.wasm", &[]).head.get("content-type"),
        Some("application/wasm")
    );
    assert_eq!(get(&server, "/blob.bin", &[]).status, 200);
    assert_eq!(get(&server, "/../secret.txt", &[]).status, 403);
    // Without --www, directories are not served.
    let bare = serve(&root, |_| {});
    assert_eq!(get(&bare, "/", &[]).status, 404);
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn connection_limit_is_enforced() {
    let (base, root) = layout("serve-limit");
    let server = serve(&root, |c| c.max_connections = 2);
    let mut a = connect(&server);
    let mut b = connect(&server);
    assert_eq!(
        send_on(&mut a, "GET /blob.bin HTTP/1.1\r\nHost: x", false).status,
        200
    );
    assert_eq!(
        send_on(&mut b, "GET /blob.bin HTTP/1.1\r\nHost: x", false).status,
        200
    );
    // A third connection waits while two are held open...
    let mut c = TcpStream::connect(server.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.write_all(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        c.read(&mut byte).is_err(),
        "third connection was served past the limit"
    );
    // ...and is served once one closes.
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut byte).unwrap(), 1);
    drop(b);
    let _ = std::fs::remove_dir_all(base);
}
