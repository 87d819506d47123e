//! Fuzzes the GGUF header parser with whole files, and checks what must hold for any input:
//!
//! * parsing never panics, and a prefix of the input is parsed consistently with the whole
//!   (it asks for more bytes, gives the same header, or fails with the same error);
//! * a header that parses can be written back, and writing is idempotent (parse(write(h))
//!   writes the same bytes again);
//! * the model index over it hands out tensor bytes without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::gguf::model::Part;
use sluice_core::gguf::reader::{parse_header, Parsed};
use sluice_core::gguf::{GgufModel, GgufWriter};
use sluice_core::source::MemorySource;
use std::sync::Arc;

const NAME: &str = "fuzz.gguf";

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let whole = parse_header(NAME, data, len);

    let half = &data[..data.len() / 2];
    match (&whole, parse_header(NAME, half, len)) {
        (_, Ok(Parsed::NeedMore(n))) => assert!(n > half.len() as u64 && n <= len),
        (Ok(Parsed::Done(h)), Ok(Parsed::Done(p))) => assert!(*h == p || has_nan(h)),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (w, p) => panic!("whole file: {w:?}, half: {p:?}"),
    }

    let Ok(Parsed::Done(header)) = whole else {
        return;
    };
    if let Ok(writer) = GgufWriter::from_header(&header) {
        let bytes = writer.header_bytes();
        let total = bytes.len() as u64 + writer.data_len();
        match parse_header(NAME, &bytes, total) {
            Ok(Parsed::Done(again)) => {
                let rewritten = GgufWriter::from_header(&again).expect("rewritable");
                assert!(
                    rewritten.header_bytes() == bytes,
                    "writing is not idempotent"
                );
            }
            other => panic!("written header does not parse: {other:?}"),
        }
    }
    let part = Part {
        path: NAME.to_string(),
        source: Arc::new(MemorySource::from_vec(NAME, data.to_vec())),
        header,
    };
    if let Ok(model) = GgufModel::from_parts(vec![part]) {
        for t in model.tensors() {
            if let Ok(Some(bytes)) = model.tensor_bytes(t) {
                assert_eq!(Some(bytes.len() as u64), t.info.nbytes());
            }
        }
    }
});

/// NaN metadata values compare unequal to themselves.
fn has_nan(h: &sluice_core::gguf::Header) -> bool {
    format!("{:?}", h.metadata).contains("NaN")
}
