//! Bad GGUF input never crashes: every truncation of a header is an error naming the file,
//! offset and field; thousands of seeded random byte flips give `Ok` or `Err`, never a panic,
//! a hang or a huge allocation; absurd counts allocate nothing.
//!
//! A counting global allocator records the largest single allocation made on the test's thread.
//! The bound is a small multiple of the file size: a one-byte array element becomes a 32-byte
//! `Value` in memory, and nothing else in the parser grows faster than that.

use sluice_core::gguf::reader::{parse_header, Parsed};
use sluice_core::gguf::{
    model::Part, GgufModel, GgufWriter, Metadata, TensorInfo, Value, ValueType,
};
use sluice_core::quant::GgmlType;
use sluice_core::source::MemorySource;
use sluice_core::Error;
use sluice_native::cmd::info::{report_json, report_text};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

struct CountingAllocator;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only record sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result and the largest allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// Largest allowed single allocation while parsing a file of `len` bytes.
fn allocation_bound(len: usize) -> usize {
    40 * len + 4096
}

fn parse_whole(name: &str, bytes: &[u8]) -> sluice_core::Result<sluice_core::gguf::Header> {
    match parse_header(name, bytes, bytes.len() as u64)? {
        Parsed::Done(h) => Ok(h),
        Parsed::NeedMore(n) => panic!("{name}: whole file given, parser asked for {n} bytes"),
    }
}

/// A small file with every value type, nested arrays and several tensor types.
fn sample_file() -> Vec<u8> {
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("deepseek2".into()));
    md.set("general.name", Value::String("robustness sample".into()));
    md.set("u8", Value::U8(7));
    md.set("i16", Value::I16(-7));
    md.set("u32", Value::U32(61));
    md.set("f32", Value::F32(0.5));
    md.set("bool", Value::Bool(true));
    md.set("u64", Value::U64(1 << 40));
    md.set("f64", Value::F64(1e-9));
    md.set(
        "tokens",
        Value::Array(
            ValueType::String,
            (0..40).map(|i| Value::String(format!("tok{i}"))).collect(),
        ),
    );
    md.set(
        "scores",
        Value::Array(
            ValueType::F32,
            (0..40).map(|i| Value::F32(-(i as f32))).collect(),
        ),
    );
    md.set(
        "nested",
        Value::Array(
            ValueType::Array,
            vec![Value::Array(
                ValueType::I32,
                vec![Value::I32(1), Value::I32(2)],
            )],
        ),
    );
    let mut w = GgufWriter::new(md).expect("valid metadata");
    for (name, ty, dims) in [
        ("token_embd.weight", GgmlType::Q4_K, vec![256u64, 2]),
        ("blk.0.attn_norm.weight", GgmlType::F32, vec![16]),
        (
            "blk.0.ffn_gate_exps.weight",
            GgmlType::IQ2_XXS,
            vec![256, 2, 2],
        ),
        ("blk.0.attn_kv_a_mqa.weight", GgmlType::Q8_0, vec![64, 3]),
        ("output.weight", GgmlType::F16, vec![8, 4]),
    ] {
        w.add_tensor(name, ty, &dims).expect("valid tensor");
    }
    let mut data = |_: usize, t: &TensorInfo, out: &mut dyn Write| -> sluice_core::Result<()> {
        let n = t.nbytes().expect("known") as usize;
        out.write_all(&vec![0x5a; n])
            .map_err(|e| Error::io("mem", e.to_string()))
    };
    w.to_vec(&mut data).expect("writes")
}

fn committed_part() -> Vec<u8> {
    let path = sluice_tests::fixtures_dir().join("gguf/tiny-Q4_K_M-00001-of-00004.gguf");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every prefix of a file, taken as the whole file, is an error that names the file and a
/// position inside it; taken as a prefix of the real file it asks for more bytes.
fn check_truncations(name: &str, bytes: &[u8]) -> usize {
    let full = parse_whole(name, bytes).expect("intact file parses");
    let header_len = full.data_offset as usize;
    for cut in 0..bytes.len() {
        let (result, largest) =
            largest_allocation(|| parse_header(name, &bytes[..cut], cut as u64));
        assert!(
            largest <= allocation_bound(cut),
            "{name} cut at {cut}: {largest}-byte allocation"
        );
        match result {
            Err(Error::Format { at, msg }) => {
                assert_eq!(at.file, name);
                assert!(
                    at.offset <= cut as u64,
                    "cut {cut}: error at {} ({msg})",
                    at.offset
                );
                assert!(!at.field.is_empty() && !msg.is_empty());
            }
            Err(other) => panic!("{name} cut at {cut}: unexpected error kind {other}"),
            Ok(_) => panic!("{name} truncated to {cut} bytes was accepted"),
        }
        // As a prefix of the real file it asks for more, or (once only the padding before
        // the data is missing) gives the whole header.
        if cut < header_len {
            match parse_header(name, &bytes[..cut], bytes.len() as u64) {
                Ok(Parsed::NeedMore(n)) => assert!(n > cut as u64 && n <= bytes.len() as u64),
                Ok(Parsed::Done(h)) => assert!(h == full, "{name} prefix of {cut} parsed wrong"),
                Err(e) => panic!("{name} prefix of {cut}: {e}"),
            }
        }
    }
    bytes.len()
}

#[test]
fn every_truncation_is_a_located_error() {
    let n = check_truncations("sample.gguf", &sample_file())
        + check_truncations("tiny-Q4_K_M-00001-of-00004.gguf", &committed_part());
    assert!(n > 50_000, "{n} truncation points");
    eprintln!("{n} truncation points checked");
}

/// splitmix64: a tiny seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Exercises everything downstream of a header that parsed: the model index, tensor access,
/// both reports and re-encoding.
fn use_parsed(name: &str, bytes: &[u8], header: sluice_core::gguf::Header) {
    if let Ok(w) = GgufWriter::from_header(&header) {
        let again = w.header_bytes();
        assert!(parse_header(name, &again, again.len() as u64 + w.data_len()).is_ok());
    }
    let part = Part {
        path: name.to_string(),
        source: Arc::new(MemorySource::from_vec(name, bytes.to_vec())),
        header,
    };
    if let Ok(model) = GgufModel::from_parts(vec![part]) {
        for t in model.tensors() {
            let _ = model.tensor_bytes(t);
        }
        let _ = report_json(name, &model, false, true).to_string();
        let _ = report_text(name, &model, false, true);
    }
}

fn flip_many(name: &str, original: &[u8], iterations: usize, seed: u64) -> (usize, usize) {
    let header_len = parse_whole(name, original).expect("intact").data_offset as usize;
    let mut rng = Rng(seed);
    let mut accepted = 0;
    for i in 0..iterations {
        let mut bytes = original.to_vec();
        for _ in 0..1 + rng.below(4) {
            // Mostly inside the header, where a flip changes what is parsed.
            let at = if rng.below(8) == 0 {
                rng.below(bytes.len())
            } else {
                rng.below(header_len)
            };
            bytes[at] = match rng.below(3) {
                0 => bytes[at] ^ (1 << rng.below(8)),
                1 => rng.next() as u8,
                _ => [0x00, 0xff, 0x7f, 0x80][rng.below(4)],
            };
        }
        let start = Instant::now();
        let (result, largest) = largest_allocation(|| parse_whole(name, &bytes));
        assert!(
            largest <= allocation_bound(bytes.len()),
            "{name} seed {seed} iteration {i}: {largest}-byte allocation"
        );
        if let Ok(h) = result {
            accepted += 1;
            use_parsed(name, &bytes, h);
        }
        assert!(
            start.elapsed().as_secs() < 2,
            "{name} iteration {i} took {:?}",
            start.elapsed()
        );
    }
    (iterations, accepted)
}

#[test]
fn random_byte_flips_never_crash() {
    let (a, ok_a) = flip_many("sample.gguf", &sample_file(), 8000, 0x5eed_0001);
    let part = committed_part();
    let (b, ok_b) = flip_many("tiny-part.gguf", &part, 4000, 0x5eed_0002);
    eprintln!("{} flipped files, {} still parsed", a + b, ok_a + ok_b);
    assert!(a + b >= 10_000);
}

/// Inputs that once crashed the fuzz target (`fuzz/`), kept as regression tests.
#[test]
fn fuzz_regressions_parse_or_fail_cleanly() {
    let dir = sluice_tests::fixtures_dir().join("gguf/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz regression inputs") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let (result, largest) = largest_allocation(|| parse_whole(name, &bytes));
        assert!(largest <= allocation_bound(bytes.len()), "{name}");
        if let Ok(h) = result {
            use_parsed(name, &bytes, h);
        }
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn absurd_headers_allocate_nothing_large() {
    let header = |n_tensors: i64, n_kv: i64, rest: &[u8]| {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        b.extend_from_slice(rest);
        b.resize(b.len() + 64, 0);
        b
    };
    let mut huge_string = b"\x01\0\0\0\0\0\0\0k\x08\0\0\0".to_vec();
    huge_string.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let mut huge_array = b"\x01\0\0\0\0\0\0\0k\x09\0\0\0\x00\0\0\0".to_vec();
    huge_array.extend_from_slice(&(1u64 << 30).to_le_bytes());
    let mut huge_dims = b"\x01\0\0\0\0\0\0\0w\x02\0\0\0".to_vec();
    huge_dims.extend_from_slice(&i64::MAX.to_le_bytes());
    huge_dims.extend_from_slice(&i64::MAX.to_le_bytes());
    for (what, bytes) in [
        ("2^62 tensors", header(1 << 62, 0, &[])),
        ("2^62 keys", header(0, 1 << 62, &[])),
        ("2^40-byte string", header(0, 1, &huge_string)),
        ("2^30-element array", header(0, 1, &huge_array)),
        ("i64::MAX x i64::MAX tensor", header(1, 0, &huge_dims)),
    ] {
        let (result, largest) = largest_allocation(|| parse_whole("absurd.gguf", &bytes));
        let e = result.expect_err(what).to_string();
        assert!(e.starts_with("absurd.gguf: at byte offset"), "{what}: {e}");
        assert!(largest < 4096, "{what}: {largest}-byte allocation");
    }
}
