//! Writing small GGUF v3 files for transport tests (HTTP, manifests), single or split the
//! way llama.cpp's gguf-split does (`split.no`/`split.count`/`split.tensors.count`, metadata
//! in the first part only). Tensor contents are deterministic pseudo-random bytes: these
//! tests check that bytes travel unchanged, not what they mean.

use std::path::{Path, PathBuf};

/// A metadata value (the few kinds these fixtures need).
#[derive(Clone, Debug)]
pub enum Meta {
    U32(u32),
    U16(u16),
    I32(i32),
    Str(String),
}

/// One tensor: name, ggml type id, dims (ggml order), bytes.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub ggml_type: u32,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

const ALIGN: usize = 32;

/// Deterministic bytes (xorshift64*), different per `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// An f32 tensor of the given dims filled with noise.
pub fn f32_tensor(name: &str, dims: &[u64], seed: u64) -> Tensor {
    let n: u64 = dims.iter().product();
    Tensor {
        name: name.into(),
        ggml_type: 0,
        dims: dims.to_vec(),
        data: noise(seed, n as usize * 4),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes one GGUF v3 file.
pub fn encode(metadata: &[(String, Meta)], tensors: &[Tensor]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut out, key);
        match value {
            Meta::U16(v) => {
                out.extend_from_slice(&2u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::U32(v) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::I32(v) => {
                out.extend_from_slice(&5u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut out, s);
            }
        }
    }
    let mut offset = 0usize;
    let mut offsets = Vec::new();
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.data.len()).div_ceil(ALIGN) * ALIGN;
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    let data_start = out.len();
    for (t, off) in tensors.iter().zip(offsets) {
        out.resize(data_start + off, 0);
        out.extend_from_slice(&t.data);
    }
    out
}

/// A small MoE-shaped model: embeddings, per-layer norms and three stacked expert tensors.
pub fn moe_tensors(layers: usize, experts: u64, width: u64) -> Vec<Tensor> {
    let mut ts = vec![f32_tensor("token_embd.weight", &[width, 64], 1)];
    for l in 0..layers {
        let seed = 100 * (l as u64 + 1);
        ts.push(f32_tensor(
            &format!("blk.{l}.attn_norm.weight"),
            &[width],
            seed,
        ));
        ts.push(f32_tensor(
            &format!("blk.{l}.ffn_gate_exps.weight"),
            &[width, 16, experts],
            seed + 1,
        ));
        ts.push(f32_tensor(
            &format!("blk.{l}.ffn_up_exps.weight"),
            &[width, 16, experts],
            seed + 2,
        ));
        ts.push(f32_tensor(
            &format!("blk.{l}.ffn_down_exps.weight"),
            &[16, width, experts],
            seed + 3,
        ));
    }
    ts.push(f32_tensor("output_norm.weight", &[width], 7));
    ts
}

/// Base metadata of the test models.
pub fn base_metadata(arch: &str) -> Vec<(String, Meta)> {
    vec![
        ("general.architecture".into(), Meta::Str(arch.into())),
        (
            "general.name".into(),
            Meta::Str("sluice transport test".into()),
        ),
        (format!("{arch}.block_count"), Meta::U32(2)),
    ]
}

/// Writes `tensors` as one file `dir/name.gguf`; returns its path.
pub fn write_single(dir: &Path, name: &str, arch: &str, tensors: &[Tensor]) -> PathBuf {
    let path = dir.join(format!("{name}.gguf"));
    std::fs::write(&path, encode(&base_metadata(arch), tensors)).expect("write test model");
    path
}

/// Writes `tensors` split over `parts` files `dir/prefix-0000i-of-0000n.gguf`, tensors dealt
/// out in order; returns the paths.
pub fn write_split(
    dir: &Path,
    prefix: &str,
    arch: &str,
    tensors: &[Tensor],
    parts: usize,
) -> Vec<PathBuf> {
    let per = tensors.len().div_ceil(parts);
    (0..parts)
        .map(|i| {
            let mut md = if i == 0 {
                base_metadata(arch)
            } else {
                Vec::new()
            };
            md.push(("split.no".into(), Meta::U16(i as u16)));
            md.push(("split.count".into(), Meta::U16(parts as u16)));
            md.push((
                "split.tensors.count".into(),
                Meta::I32(tensors.len() as i32),
            ));
            let chunk = &tensors[(i * per).min(tensors.len())..((i + 1) * per).min(tensors.len())];
            let path = dir.join(format!("{prefix}-{:05}-of-{parts:05}.gguf", i + 1));
            std::fs::write(&path, encode(&md, chunk)).expect("write test model part");
            path
        })
        .collect()
}

/// A fresh empty directory under the target dir's tmp, unique per test name.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-test-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
