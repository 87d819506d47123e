//! Unit tests of the GGUF reader and writer: round trips over every value type, and the
//! specific error for each kind of malformed header.

use super::reader::{parse_header, Parsed};
use super::*;
use crate::quant::GgmlType;
use crate::Error;
use std::io::Write;

fn parse(bytes: &[u8]) -> Result<Header> {
    match parse_header("t.gguf", bytes, bytes.len() as u64)? {
        Parsed::Done(h) => Ok(h),
        Parsed::NeedMore(n) => panic!("whole file given, parser wants {n} bytes"),
    }
}

fn parse_err(bytes: &[u8]) -> String {
    match parse(bytes) {
        Ok(_) => panic!("malformed header was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Tensor data that is a counter pattern, so misplaced bytes show.
fn pattern_data(_: usize, t: &TensorInfo, out: &mut dyn Write) -> Result<()> {
    let n = t.nbytes().unwrap_or(0) as usize;
    let bytes: Vec<u8> = (0..n).map(|i| (i * 7 + t.name.len()) as u8).collect();
    out.write_all(&bytes)
        .map_err(|e| Error::io("mem", e.to_string()))
}

fn every_value_type() -> Metadata {
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("llama".into()));
    md.set("u8", Value::U8(200));
    md.set("i8", Value::I8(-5));
    md.set("u16", Value::U16(65000));
    md.set("i16", Value::I16(-30000));
    md.set("u32", Value::U32(4_000_000_000));
    md.set("i32", Value::I32(-2_000_000_000));
    md.set("f32", Value::F32(1.5e-3));
    md.set("bool.t", Value::Bool(true));
    md.set("bool.f", Value::Bool(false));
    md.set("string.empty", Value::String(String::new()));
    md.set("string.utf8", Value::String("héllo ✓ 漢字".into()));
    md.set("u64", Value::U64(u64::MAX));
    md.set("i64", Value::I64(i64::MIN));
    md.set("f64", Value::F64(-2.5e300));
    md.set(
        "arr.i32",
        Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-2)]),
    );
    md.set("arr.empty", Value::Array(ValueType::F32, vec![]));
    md.set(
        "arr.str",
        Value::Array(
            ValueType::String,
            vec![Value::String("a".into()), Value::String(String::new())],
        ),
    );
    md.set(
        "arr.bool",
        Value::Array(ValueType::Bool, vec![Value::Bool(true), Value::Bool(false)]),
    );
    md.set(
        "arr.nested",
        Value::Array(
            ValueType::Array,
            vec![
                Value::Array(ValueType::U8, vec![Value::U8(1), Value::U8(2)]),
                Value::Array(
                    ValueType::Array,
                    vec![Value::Array(
                        ValueType::String,
                        vec![Value::String("deep".into())],
                    )],
                ),
            ],
        ),
    );
    md
}

fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new(every_value_type()).unwrap();
    w.add_tensor("token_embd.weight", GgmlType::Q4_K, &[256, 3])
        .unwrap();
    w.add_tensor("scalar", GgmlType::F32, &[]).unwrap();
    w.add_tensor("norm", GgmlType::F32, &[5, 1, 1]).unwrap();
    w.add_tensor("q8", GgmlType::Q8_0, &[64, 2, 1, 3]).unwrap();
    w.add_tensor("empty", GgmlType::F16, &[0, 4]).unwrap();
    w.add_tensor("f16", GgmlType::F16, &[3]).unwrap();
    w
}

#[test]
fn parse_of_write_gives_back_what_was_written() {
    for version in [2, 3] {
        let mut w = sample_writer();
        w.set_version(version).unwrap();
        let bytes = w.to_vec(&mut pattern_data).unwrap();
        assert_eq!(bytes.len() as u64, w.file_len());
        let h = parse(&bytes).unwrap();
        assert_eq!(h.version, version);
        assert_eq!(&h.metadata, w.metadata());
        assert_eq!(h.alignment, 32);
        assert_eq!(h.data_offset % 32, 0);
        assert_eq!(h.tensors.len(), w.tensors().len());
        for (got, want) in h.tensors.iter().zip(w.tensors()) {
            assert_eq!(
                (&got.name, got.ty, &got.dims, got.offset),
                (&want.name, want.ty, &want.dims, want.offset)
            );
            let start = (h.data_offset + got.offset) as usize;
            let mut expect = Vec::new();
            pattern_data(0, want, &mut expect).unwrap();
            assert_eq!(
                &bytes[start..start + expect.len()],
                &expect[..],
                "{}",
                got.name
            );
        }
        // And writing the parsed header back gives the same bytes.
        let again = GgufWriter::from_header(&h).unwrap();
        assert_eq!(again.to_vec(&mut pattern_data).unwrap(), bytes);
    }
}

#[test]
fn custom_alignment_is_used_for_header_and_tensors() {
    let mut md = Metadata::new();
    md.set("general.alignment", Value::U32(256));
    let mut w = GgufWriter::new(md).unwrap();
    w.add_tensor("a", GgmlType::F32, &[3]).unwrap();
    w.add_tensor("b", GgmlType::F32, &[300]).unwrap();
    w.add_tensor("c", GgmlType::I8, &[1]).unwrap();
    assert_eq!(
        w.tensors().iter().map(|t| t.offset).collect::<Vec<_>>(),
        [0, 256, 1536]
    );
    let bytes = w.to_vec(&mut pattern_data).unwrap();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.alignment, 256);
    assert_eq!(h.data_offset, 256);
    assert_eq!(bytes.len(), 256 + 1536 + 256);
}

#[test]
fn file_without_tensors_round_trips() {
    let w = GgufWriter::new(every_value_type()).unwrap();
    let bytes = w.to_vec(&mut pattern_data).unwrap();
    assert_eq!(bytes.len() % 32, 0, "header is padded even with no tensors");
    let h = parse(&bytes).unwrap();
    assert!(h.tensors.is_empty());
    assert_eq!(
        GgufWriter::from_header(&h)
            .unwrap()
            .to_vec(&mut pattern_data)
            .unwrap(),
        bytes
    );
}

#[test]
fn writer_refuses_what_the_reader_would_refuse() {
    let mut w = GgufWriter::new(Metadata::new()).unwrap();
    let long = "x".repeat(64);
    assert!(w.add_tensor(&long, GgmlType::F32, &[1]).is_err());
    assert!(w.add_tensor("q", GgmlType::Q4_K, &[100]).is_err());
    assert!(w
        .add_tensor("five", GgmlType::F32, &[1, 1, 1, 1, 1])
        .is_err());
    assert!(w.add_tensor("new", GgmlType(250), &[1]).is_err());
    assert!(w.add_tensor("gone", GgmlType::Q4_2, &[32]).is_err());
    assert!(w.add_tensor("huge", GgmlType::F32, &[1 << 62, 4]).is_err());
    w.add_tensor("ok", GgmlType::F32, &[1]).unwrap();
    assert!(w.add_tensor("ok", GgmlType::F32, &[1]).is_err());
    assert!(w.set_version(1).is_err());

    let mut md = Metadata::new();
    md.set("general.alignment", Value::U64(32));
    assert!(GgufWriter::new(md).is_err());
    let mut md = Metadata::new();
    md.set("general.alignment", Value::U32(48));
    assert!(GgufWriter::new(md).is_err());
    let mut md = Metadata::new();
    md.set("mixed", Value::Array(ValueType::U8, vec![Value::I8(1)]));
    assert!(GgufWriter::new(md).is_err());
}

#[test]
fn data_provider_must_write_exactly_the_tensor_size() {
    let mut w = GgufWriter::new(Metadata::new()).unwrap();
    w.add_tensor("a", GgmlType::F32, &[4]).unwrap();
    let mut short = |_: usize, _: &TensorInfo, out: &mut dyn Write| -> Result<()> {
        out.write_all(&[0; 15])
            .map_err(|e| Error::io("m", e.to_string()))
    };
    let err = w.to_vec(&mut short).unwrap_err().to_string();
    assert!(err.contains("15 bytes, expected 16"), "{err}");
}

#[test]
fn canonical_dims_drop_trailing_ones() {
    assert_eq!(canonical_dims(&[4096, 1, 1]), [4096]);
    assert_eq!(canonical_dims(&[1, 1]), [1]);
    assert_eq!(canonical_dims(&[]), [1]);
    assert_eq!(canonical_dims(&[7, 1, 3, 1]), [7, 1, 3]);
    assert_eq!(canonical_dims(&[7, 0]), [7, 0]);
}

// ---- malformed headers: each gives its own error ---------------------------------------------

/// Hand-assembles header bytes, including ones no writer would produce.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn start(version: u32, n_tensors: i64, n_kv: i64) -> Raw {
        let mut r = Raw::default();
        r.0.extend_from_slice(b"GGUF");
        r.u32(version).i64(n_tensors).i64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn byte(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn tensor(&mut self, name: &str, dims: &[i64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.i64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad_to(&mut self, n: usize) -> &mut Self {
        self.0.resize(n, 0);
        self
    }
}

fn expect_err(bytes: &[u8], needle: &str) {
    let e = parse_err(bytes);
    assert!(e.contains(needle), "error {e:?} lacks {needle:?}");
    assert!(
        e.starts_with("t.gguf: at byte offset "),
        "error {e:?} does not say where"
    );
}

#[test]
fn bad_magic_and_versions() {
    expect_err(b"GGUG\x03\0\0\0", "not a GGUF file");
    expect_err(&Raw::start(1, 0, 0).0, "version 1 is obsolete");
    expect_err(&Raw::start(0, 0, 0).0, "unsupported GGUF version 0");
    expect_err(&Raw::start(4, 0, 0).0, "unsupported GGUF version 4");
    // A big-endian v3 file reads as 0x03000000 here.
    let mut be = b"GGUF".to_vec();
    be.extend_from_slice(&3u32.to_be_bytes());
    be.extend_from_slice(&0u64.to_be_bytes());
    be.extend_from_slice(&0u64.to_be_bytes());
    expect_err(&be, "big-endian");
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    expect_err(&Raw::start(3, 1 << 62, 0).0, "tensor count");
    expect_err(&Raw::start(3, -1, 0).0, "negative count");
    expect_err(&Raw::start(3, 0, i64::MAX).0, "metadata count");
    // A 2^40-byte key, then a 2^40-byte string value.
    let mut r = Raw::start(3, 0, 1);
    r.u64(1 << 40).pad_to(64);
    expect_err(&r.0, "string length 1099511627776 exceeds 1 GiB");
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(8).u64(1 << 29);
    expect_err(&r.0, "needs 536870912 bytes but the file ends");
    // Arrays: huge counts of fixed-size and of string elements, unknown element types.
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(9).u32(4).u64(1 << 60);
    expect_err(&r.0, "exceeds the limit");
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(9).u32(8).u64(1 << 20);
    expect_err(&r.0, "cannot fit");
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(9).u32(13).u64(1);
    expect_err(&r.0, "unknown value type 13");
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(0xFFFF_FFFF).pad_to(64);
    expect_err(&r.0, "unknown value type 4294967295");
    // Arrays nested past the depth limit.
    let mut r = Raw::start(3, 0, 1);
    r.str("k").u32(9);
    for _ in 0..20 {
        r.u32(9).u64(1);
    }
    r.0.extend_from_slice(&[0; 64]);
    expect_err(&r.0, "nested too deeply");
}

#[test]
fn keys_must_be_non_empty_and_unique() {
    let mut r = Raw::start(3, 0, 1);
    r.str("").u32(0).byte(0).pad_to(64);
    expect_err(&r.0, "empty key");
    let mut r = Raw::start(3, 0, 2);
    r.str("k").u32(0).byte(0);
    r.str("k").u32(0).byte(0);
    expect_err(&r.0, "duplicate key k");
    let mut r = Raw::start(3, 0, 1);
    r.u64(2);
    r.0.extend_from_slice(&[0xff, 0xfe]);
    r.u32(0).byte(0);
    expect_err(&r.0, "not valid UTF-8");
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    for (ty, val, len) in [(4u32, 0u64, 4), (4, 48, 4), (10, 32, 8), (5, 32, 4)] {
        let mut r = Raw::start(3, 0, 1);
        r.str("general.alignment").u32(ty);
        r.0.extend_from_slice(&val.to_le_bytes()[..len]);
        expect_err(&r.0, "general.alignment");
    }
}

#[test]
fn bad_tensor_records() {
    let one = |dims: &[i64], ty: u32, offset: u64, extra: usize| {
        let mut r = Raw::start(3, 1, 0);
        r.tensor("w", dims, ty, offset);
        let n = r.0.len().div_ceil(32) * 32 + extra;
        r.pad_to(n);
        r.0
    };
    expect_err(&one(&[1, 1, 1, 1, 1], 0, 0, 64), "5 dimensions");
    expect_err(&one(&[4, -3], 0, 0, 64), "negative dimension -3");
    expect_err(
        &one(&[1 << 32, 1 << 32], 0, 0, 64),
        "element count overflows",
    );
    expect_err(&one(&[1 << 62, 4], 0, 0, 64), "element count overflows");
    expect_err(&one(&[1 << 62], 0, 0, 64), "overflows 64 bits");
    expect_err(
        &one(&[100], 12, 0, 256),
        "not a multiple of the Q4_K block size 256",
    );
    expect_err(&one(&[32], 4, 0, 64), "Q4_2 (id 4) was removed");
    expect_err(&one(&[16], 0, 0, 63), "runs past the end");
    expect_err(&one(&[16], 0, 32, 96), "has offset 32, expected 0");
    expect_err(
        &one(&[16], 0, 1 << 63, 96),
        "has offset 9223372036854775808",
    );
    let mut r = Raw::start(3, 1, 0);
    r.tensor(&"n".repeat(64), &[1], 0, 0).pad_to(256);
    expect_err(&r.0, "longer than 63 bytes");
    let mut r = Raw::start(3, 2, 0);
    r.tensor("a", &[1], 0, 0)
        .tensor("a", &[1], 0, 32)
        .pad_to(256);
    expect_err(&r.0, "duplicate tensor name a");
    // The data section itself would start past the end of the file.
    let mut r = Raw::start(3, 1, 0);
    r.tensor("w", &[0], 0, 0);
    expect_err(&r.0, "data section would start");
    // The second tensor overlaps the first.
    let mut r = Raw::start(3, 2, 0);
    r.tensor("a", &[16], 0, 0).tensor("b", &[16], 0, 32);
    let n = r.0.len().div_ceil(32) * 32 + 128;
    r.pad_to(n);
    expect_err(&r.0, "tensor b has offset 32, expected 64");
}

#[test]
fn zero_dimension_makes_an_empty_tensor_however_large_the_rest() {
    // Found by the fuzzer: ne = {0, 2^40, 2^40} has 0 elements (llama.cpp accepts it), and
    // the byte size must not multiply the other dimensions into an overflow.
    let mut r = Raw::start(3, 2, 0);
    r.tensor("empty", &[0, 1 << 40, 1 << 40], 0, 0)
        .tensor("after", &[4], 0, 0);
    let n = r.0.len().div_ceil(32) * 32 + 32;
    r.pad_to(n);
    let h = parse(&r.0).unwrap();
    assert_eq!(h.tensors[0].nbytes(), Some(0));
    assert_eq!(h.tensors[0].n_elements(), 0);
    assert_eq!(h.tensors[1].offset, 0);
}

#[test]
fn newer_type_ids_load_as_metadata_and_fail_on_use() {
    // An unknown type (id 200) between two known ones: its extent is up to the next offset.
    let mut r = Raw::start(3, 3, 0);
    r.tensor("a", &[8], 0, 0)
        .tensor("new", &[7, 3], 200, 32)
        .tensor("b", &[8], 0, 96);
    let n = r.0.len().div_ceil(32) * 32 + 128;
    r.pad_to(n);
    let h = parse(&r.0).unwrap();
    assert_eq!(h.tensors[1].ty, GgmlType(200));
    assert_eq!(h.tensors[1].nbytes(), None);
    assert_eq!(h.tensors[1].ty.name(), "type#200");

    let model = GgufModel::from_parts(vec![model::Part {
        path: "t.gguf".into(),
        source: std::sync::Arc::new(crate::source::MemorySource::from_vec("t.gguf", r.0.clone())),
        header: h,
    }])
    .unwrap();
    let t = model.tensor("new").unwrap();
    let e = model.tensor_bytes(t).unwrap_err().to_string();
    assert!(e.contains("type#200"), "{e}");
    assert!(model
        .tensor_bytes(model.tensor("b").unwrap())
        .unwrap()
        .is_some());

    // After an unknown tensor, offsets must still be aligned and must not go backwards.
    let mut r = Raw::start(3, 3, 0);
    r.tensor("a", &[8], 0, 0)
        .tensor("new", &[7], 200, 32)
        .tensor("b", &[8], 0, 0);
    let n = r.0.len().div_ceil(32) * 32 + 128;
    r.pad_to(n);
    expect_err(&r.0, "at least 32");
    let mut r = Raw::start(3, 2, 0);
    r.tensor("new", &[8], 200, 0)
        .tensor("new2", &[7], 201, 4096);
    let n = r.0.len().div_ceil(32) * 32 + 128;
    r.pad_to(n);
    expect_err(&r.0, "starts at 4096");
}

#[test]
fn prefix_parsing_asks_for_more() {
    let w = sample_writer();
    let bytes = w.to_vec(&mut pattern_data).unwrap();
    let header_len = w.header_bytes().len();
    match parse_header("t", &bytes[..40], bytes.len() as u64).unwrap() {
        Parsed::NeedMore(n) => assert!(n > 40),
        Parsed::Done(_) => panic!("40 bytes cannot hold the header"),
    }
    assert!(matches!(
        parse_header("t", &bytes[..header_len], bytes.len() as u64).unwrap(),
        Parsed::Done(_)
    ));
}

// ---- split models ----------------------------------------------------------------------------

// block_on (native only) drives the opener futures.
#[cfg(not(target_arch = "wasm32"))]
mod split_models {
    use super::*;
    use crate::gguf::split::{plan_merge, plan_split, SplitLimit, SplitOptions};
    use crate::source::{block_on, ByteSource, LocalBoxFuture, MemorySource};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Opens names from a map of in-memory files.
    struct MapOpener(HashMap<String, Vec<u8>>);

    impl SourceOpener for MapOpener {
        fn open<'a>(&'a self, path: &'a str) -> LocalBoxFuture<'a, Result<Arc<dyn ByteSource>>> {
            let r = match self.0.get(path) {
                Some(b) => Ok(Arc::new(MemorySource::from_vec(path, b.clone())) as Arc<_>),
                None => Err(Error::io(path, "no such file")),
            };
            Box::pin(std::future::ready(r))
        }
    }

    /// A model written the way ggml writes (shapes without trailing 1s), so that merging its
    /// split can reproduce it byte for byte.
    fn whole_model() -> GgufWriter {
        let mut md = Metadata::new();
        md.set("general.architecture", Value::String("llama".into()));
        md.set("llama.block_count", Value::U32(2));
        let mut w = GgufWriter::new(md).unwrap();
        for (name, dims) in [("a", vec![40u64]), ("b", vec![8, 3]), ("c", vec![5])] {
            w.add_tensor(name, GgmlType::F32, &dims).unwrap();
        }
        w
    }

    /// The split of `whole_model` into three parts, one tensor each, as files `m-…`.
    fn split_files() -> (Vec<u8>, HashMap<String, Vec<u8>>) {
        let w = whole_model();
        let whole = w.to_vec(&mut pattern_data).unwrap();
        let plan = plan_split(
            w.metadata(),
            w.tensors(),
            SplitOptions {
                limit: SplitLimit::Tensors(1),
                no_tensor_first_split: false,
            },
        )
        .unwrap();
        assert_eq!(plan.len(), 3);
        let mut files = HashMap::new();
        for (i, p) in plan.iter().enumerate() {
            let mut data = |j: usize, t: &TensorInfo, out: &mut dyn Write| {
                assert_eq!(t.name, w.tensors()[p.sources[j]].name);
                pattern_data(j, t, out)
            };
            let name = split::split_path("m", i as u32 + 1, 3);
            files.insert(name, p.writer.to_vec(&mut data).unwrap());
        }
        (whole, files)
    }

    #[test]
    fn any_part_opens_the_whole_model() {
        let (_, files) = split_files();
        let opener = MapOpener(files);
        for part in 1..=3 {
            let path = split::split_path("m", part, 3);
            let m = block_on(GgufModel::open(&path, &opener)).unwrap();
            assert_eq!(m.parts.len(), 3);
            let names: Vec<_> = m.tensors().iter().map(|t| t.name()).collect();
            assert_eq!(names, ["a", "b", "c"]);
            assert_eq!(
                m.metadata().get_str("general.architecture").unwrap(),
                Some("llama")
            );
            let c = m.tensor("c").unwrap();
            assert_eq!((c.part, c.info.dims.as_slice()), (2, &[5u64][..]));
        }
    }

    #[test]
    fn split_keys_follow_gguf_split() {
        let (_, files) = split_files();
        let first = parse(&files["m-00001-of-00003.gguf"]).unwrap();
        let keys: Vec<_> = first.metadata.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "general.architecture",
                "llama.block_count",
                "split.no",
                "split.tensors.count",
                "split.count"
            ]
        );
        let second = parse(&files["m-00002-of-00003.gguf"]).unwrap();
        assert_eq!(second.metadata.get("split.no"), Some(&Value::U16(1)));
        assert_eq!(second.metadata.get("split.count"), Some(&Value::U16(3)));
        assert_eq!(
            second.metadata.get("split.tensors.count"),
            Some(&Value::I32(3))
        );
        assert_eq!(second.metadata.len(), 3);
    }

    #[test]
    fn merging_a_split_gives_back_the_original() {
        let (whole, files) = split_files();
        let opener = MapOpener(files);
        let m = block_on(GgufModel::open("m-00003-of-00003.gguf", &opener)).unwrap();
        let infos: Vec<_> = m.tensors().iter().map(|t| t.info.clone()).collect();
        let copy = |i: usize, _: &TensorInfo, out: &mut dyn Write| -> Result<()> {
            let t = &m.tensors()[i];
            let bytes = m.tensor_bytes(t)?.expect("memory source");
            out.write_all(bytes)
                .map_err(|e| Error::io("mem", e.to_string()))
        };
        let dropped = plan_merge(m.metadata(), &infos, true).unwrap();
        assert_eq!(dropped.writer.to_vec(&mut { copy }).unwrap(), whole);

        // gguf-split's way keeps split.no and split.tensors.count, with split.count = 0, and
        // the merged file opens as a single-part model.
        let kept = plan_merge(m.metadata(), &infos, false).unwrap();
        let merged = kept.writer.to_vec(&mut { copy }).unwrap();
        let h = parse(&merged).unwrap();
        assert_eq!(h.metadata.get("split.count"), Some(&Value::U16(0)));
        let opener = MapOpener(HashMap::from([("merged.gguf".to_string(), merged.clone())]));
        let one = block_on(GgufModel::open("merged.gguf", &opener)).unwrap();
        assert_eq!(one.tensors().len(), 3);
        let e = plan_merge(&h.metadata, &infos, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already a merged file"), "{e}");
    }

    fn open_err(files: HashMap<String, Vec<u8>>, path: &str) -> String {
        match block_on(GgufModel::open(path, &MapOpener(files))) {
            Ok(_) => panic!("inconsistent split opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_part_is_named() {
        let (_, mut files) = split_files();
        files.remove("m-00002-of-00003.gguf");
        let e = open_err(files, "m-00003-of-00003.gguf");
        assert!(e.contains("m-00002-of-00003.gguf"), "{e}");
        assert!(e.contains("part 2 of 3"), "{e}");
    }

    #[test]
    fn inconsistent_split_keys_are_refused() {
        // Parts swapped: part 2's file holds split.no 2.
        let (_, mut files) = split_files();
        let two = files.remove("m-00002-of-00003.gguf").unwrap();
        let three = files.remove("m-00003-of-00003.gguf").unwrap();
        files.insert("m-00002-of-00003.gguf".into(), three);
        files.insert("m-00003-of-00003.gguf".into(), two);
        let e = open_err(files, "m-00001-of-00003.gguf");
        assert!(e.contains("split.no is 2 but it is part 2"), "{e}");

        // A part whose split.count disagrees, and one whose tensor total disagrees.
        for (key, value, needle) in [
            (
                "split.count",
                Value::U16(4),
                "split.count is 4 but the model has 3",
            ),
            (
                "split.tensors.count",
                Value::I32(7),
                "split.tensors.count is 7",
            ),
        ] {
            let (_, mut files) = split_files();
            let path = "m-00002-of-00003.gguf";
            let h = parse(&files[path]).unwrap();
            let mut h2 = h.clone();
            h2.metadata.set(key, value);
            let w = GgufWriter::from_header(&h2).unwrap();
            files.insert(path.into(), w.to_vec(&mut pattern_data).unwrap());
            let e = open_err(files, "m-00001-of-00003.gguf");
            assert!(e.contains(needle), "{e}");
        }

        // The name says 4 parts, the file says 3.
        let (_, files) = split_files();
        let mut renamed = HashMap::new();
        renamed.insert(
            "x-00001-of-00004.gguf".to_string(),
            files["m-00001-of-00003.gguf"].clone(),
        );
        let e = open_err(renamed, "x-00001-of-00004.gguf");
        assert!(
            e.contains("the name says 4 parts but split.count is 3"),
            "{e}"
        );
    }

    #[test]
    fn split_by_size_and_empty_first_part() {
        let w = whole_model();
        // a = 160 B, b = 96 B, c = 20 B (32 counted): a 200-byte limit gives [a] [b c].
        let plan = |limit, no_first| {
            plan_split(
                w.metadata(),
                w.tensors(),
                SplitOptions {
                    limit,
                    no_tensor_first_split: no_first,
                },
            )
        };
        let groups =
            |p: Vec<split::PlannedFile>| p.into_iter().map(|f| f.sources).collect::<Vec<_>>();
        assert_eq!(
            groups(plan(SplitLimit::Bytes(200), false).unwrap()),
            [vec![0], vec![1, 2]]
        );
        assert_eq!(
            groups(plan(SplitLimit::Bytes(1000), false).unwrap()),
            [vec![0, 1, 2]]
        );
        assert_eq!(
            groups(plan(SplitLimit::Tensors(2), true).unwrap()),
            [vec![], vec![0, 1], vec![2]]
        );
        let e = plan(SplitLimit::Bytes(100), false).unwrap_err().to_string();
        assert!(e.contains("tensor a alone is 160 bytes"), "{e}");
        assert!(plan(SplitLimit::Tensors(0), false).is_err());
        let first = plan(SplitLimit::Tensors(2), true).unwrap().remove(0);
        assert!(first.writer.tensors().is_empty());
        assert_eq!(first.writer.metadata().len(), 5);
    }

    #[test]
    fn split_sizes_parse_like_gguf_split() {
        use crate::gguf::split::parse_split_size;
        assert_eq!(parse_split_size("500M").unwrap(), 500_000_000);
        assert_eq!(parse_split_size("2G").unwrap(), 2_000_000_000);
        for bad in [
            "",
            "G",
            "0M",
            "-1G",
            "1.5G",
            "10K",
            "10m",
            "99999999999999999999G",
        ] {
            assert!(parse_split_size(bad).is_err(), "{bad}");
        }
    }
}
