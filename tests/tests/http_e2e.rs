//! End to end: a split model served by `sluice serve` and opened by URL gives the same tensor
//! table as the local files, and every tensor read over HTTP equals the local bytes — plain,
//! batched (`read_many`), and verified against an integrity manifest.

use sluice_core::gguf::GgufModel;
use sluice_core::source::block_on;
use sluice_native::http::server::{start, ServerConfig};
use sluice_native::http::HttpOpener;
use sluice_native::manifest::{manifest_path_for, Manifest};
use sluice_native::open::{open_model, open_model_with, OpenOptions, Verify};
use sluice_tests::gguf_build::{moe_tensors, scratch_dir, write_split};

#[test]
fn split_model_over_http_matches_local() {
    let dir = scratch_dir("http-e2e");
    let parts = write_split(&dir, "tiny-moe", "deepseek2", &moe_tensors(3, 8, 64), 3);
    let local = open_model(parts[0].to_str().unwrap(), Default::default()).unwrap();

    let mut config = ServerConfig::new(&dir);
    config.port = 0;
    let server = start(config).unwrap();
    // Open by the second part's URL: siblings are found by name.
    let url = format!("{}/tiny-moe-00002-of-00003.gguf", server.base_url());
    let remote = block_on(GgufModel::open(&url, &HttpOpener::default())).unwrap();

    assert_eq!(remote.parts.len(), 3);
    assert_eq!(remote.tensors().len(), local.tensors().len());
    for (r, l) in remote.tensors().iter().zip(local.tensors()) {
        assert_eq!(
            (&r.info.name, r.info.ty, &r.info.dims, r.part, r.data_start),
            (&l.info.name, l.info.ty, &l.info.dims, l.part, l.data_start)
        );
    }
    assert_eq!(
        remote
            .metadata()
            .get("general.architecture")
            .and_then(|v| v.as_str()),
        Some("deepseek2")
    );
    for t in remote.tensors() {
        let n = t.info.nbytes().unwrap() as usize;
        let got = block_on(remote.read_tensor_range(t, 0, n)).unwrap();
        let want = local
            .tensor_bytes(local.tensor(t.name()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(got, want, "{}", t.name());
    }

    // An expert's three slabs in one batch.
    let slab = |name: &str, e: u64| {
        let t = remote.tensor(name).unwrap();
        let size = t.info.nbytes().unwrap() / t.info.ne(2);
        (t.clone(), t.data_start + e * size, size as usize)
    };
    let names = [
        "blk.1.ffn_gate_exps.weight",
        "blk.1.ffn_up_exps.weight",
        "blk.1.ffn_down_exps.weight",
    ];
    let slabs: Vec<_> = names.iter().map(|n| slab(n, 5)).collect();
    let part = slabs[0].0.part;
    assert!(
        slabs.iter().all(|s| s.0.part == part),
        "fixture keeps a layer in one part"
    );
    let ranges: Vec<(u64, usize)> = slabs.iter().map(|s| (s.1, s.2)).collect();
    let got = block_on(remote.parts[part].source.read_many(&ranges)).unwrap();
    for ((t, off, len), bytes) in slabs.iter().zip(&got) {
        let all = local
            .tensor_bytes(local.tensor(t.name()).unwrap())
            .unwrap()
            .unwrap();
        let rel = (off - t.data_start) as usize;
        assert_eq!(bytes[..], all[rel..rel + len]);
    }

    // With a manifest next to the model, URL opens verify every whole tensor and slab.
    let manifest = Manifest::build(&local, 2).unwrap();
    let sidecar = manifest_path_for(parts[0].to_str().unwrap()).unwrap();
    manifest
        .write(std::path::Path::new(&sidecar), false)
        .unwrap();
    let err = manifest
        .write(std::path::Path::new(&sidecar), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--force"), "{err}");
    manifest
        .write(std::path::Path::new(&sidecar), true)
        .unwrap();
    let opened = open_model_with(
        &url,
        &OpenOptions {
            verify: Verify::Required,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(opened.manifest.is_some());
    for t in opened.model.tensors() {
        block_on(
            opened
                .model
                .read_tensor_range(t, 0, t.info.nbytes().unwrap() as usize),
        )
        .unwrap();
    }
    // The server lists the model with its manifest.
    let listing = sluice_native::http::fetch_document(
        &format!("{}/models.json", server.base_url()),
        1 << 20,
        &Default::default(),
    )
    .unwrap()
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    assert_eq!(v["models"][0]["manifest"], "/tiny-moe.manifest.json");

    // Missing parts and missing manifests are clear errors naming the URL.
    let missing = format!("{}/nope-00001-of-00002.gguf", server.base_url());
    let err = block_on(GgufModel::open(&missing, &HttpOpener::default()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&missing) && err.contains("404"), "{err}");
    std::fs::remove_file(&sidecar).unwrap();
    let err = open_model_with(
        &url,
        &OpenOptions {
            verify: Verify::Required,
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no integrity manifest"), "{err}");
    // A manifest of another model is refused before any tensor is used.
    let other = write_split(&dir, "other", "deepseek2", &moe_tensors(3, 8, 32), 3);
    let other_model = open_model(other[0].to_str().unwrap(), Default::default()).unwrap();
    Manifest::build(&other_model, 1)
        .unwrap()
        .write(std::path::Path::new(&sidecar), false)
        .unwrap();
    let err = open_model_with(&url, &OpenOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("manifest"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
