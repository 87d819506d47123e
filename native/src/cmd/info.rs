//! `sluice info MODEL`: what a model holds, read from the headers only (a path, or an
//! `http://` URL read by range requests).
//!
//! Given any part of a split model it shows the whole model: architecture and name, GGUF
//! version, metadata (long arrays and strings abbreviated the way gguf-py's `gguf_dump` does,
//! everything with `--full`), a tensor table (name, type, shape in ggml `ne` order, offset,
//! bytes, part) and the totals per quant type with bits per weight. `--json` prints the same
//! as one JSON object. No tensor data is read, so it is fast on any model size.

use crate::open::{open_model_with, OpenOptions};
use anyhow::Result;
use serde_json::{json, Value as Json};
use sluice_core::gguf::{GgufModel, ModelTensor, Value, ValueType};
use sluice_core::quant::GgmlType;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

/// Show a GGUF model's metadata, tensors and size per quant type.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Model path or URL (any part of a split model finds the others).
    pub model: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show every element of long arrays and the whole of long strings.
    #[arg(long)]
    pub full: bool,
    /// Leave out the tensor table.
    #[arg(long)]
    pub no_tensors: bool,
    /// Tensors are listed by default; accepted for compatibility.
    #[arg(long, hide = true)]
    pub tensors: bool,
}

/// Arrays show this many elements unless `--full` (as gguf_dump does).
const ARRAY_PREVIEW: usize = 6;
/// Strings longer than this are cut to `STRING_PREVIEW - 3` characters and "..." (gguf_dump).
const STRING_PREVIEW: usize = 60;

pub fn run(args: InfoArgs) -> Result<()> {
    let opened = open_model_with(&args.model, &OpenOptions::default())?;
    let model = &opened.model;
    let mut text = if args.json {
        let mut report = report_json(&args.model, model, args.full, !args.no_tensors);
        report["integrity_manifest"] = opened.manifest.is_some().into();
        report.to_string() + "\n"
    } else {
        report_text(&args.model, model, args.full, !args.no_tensors)
    };
    if !args.json && opened.manifest.is_some() {
        text.push_str("\nintegrity: reads verified against the sidecar manifest\n");
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `sluice info x | head` closing the pipe early is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Totals for one tensor type.
#[derive(Default)]
struct TypeTotals {
    tensors: u64,
    elements: u64,
    /// `None` once a tensor of unknown size was seen.
    bytes: Option<u64>,
}

impl TypeTotals {
    fn add(&mut self, t: &ModelTensor) {
        if self.tensors == 0 {
            self.bytes = Some(0);
        }
        self.tensors += 1;
        // Saturating: tensors of unknown types have no size check bounding their shapes.
        self.elements = self.elements.saturating_add(t.info.n_elements());
        self.bytes = self
            .bytes
            .zip(t.info.nbytes())
            .map(|(a, b)| a.saturating_add(b));
    }

    fn bits_per_weight(&self) -> Option<f64> {
        let bytes = self.bytes?;
        (self.elements > 0).then(|| bytes as f64 * 8.0 / self.elements as f64)
    }
}

/// Per-type totals (in type id order) and the overall total.
fn totals(model: &GgufModel) -> (BTreeMap<GgmlType, TypeTotals>, TypeTotals) {
    let mut per_type: BTreeMap<GgmlType, TypeTotals> = BTreeMap::new();
    let mut all = TypeTotals::default();
    for t in model.tensors() {
        per_type.entry(t.info.ty).or_default().add(t);
        all.add(t);
    }
    (per_type, all)
}

/// The type as gguf_dump prints it: `STRING`, `[INT32]`, `[[UINT8]]` for nested arrays.
fn type_label(v: &Value) -> String {
    match v {
        Value::Array(elem, items) => {
            let inner = match (elem, items.first()) {
                (ValueType::Array, Some(first)) => type_label(first),
                (ValueType::Array, None) => "ARRAY".to_string(),
                (t, _) => t.name().to_uppercase(),
            };
            format!("[{inner}]")
        }
        v => v.value_type().name().to_uppercase(),
    }
}

fn preview_str(s: &str, full: bool) -> String {
    if full || s.chars().count() <= STRING_PREVIEW {
        return s.to_string();
    }
    let cut: String = s.chars().take(STRING_PREVIEW - 3).collect();
    format!("{cut}...")
}

/// A value as text, long strings and arrays abbreviated unless `full`.
fn value_text(v: &Value, full: bool) -> String {
    match v {
        Value::String(s) => format!("{:?}", preview_str(s, full)),
        Value::Array(_, items) => {
            let shown = if full {
                items.len()
            } else {
                items.len().min(ARRAY_PREVIEW)
            };
            let mut out = String::from("[");
            for (i, item) in items[..shown].iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&value_text(item, full));
            }
            if shown < items.len() {
                out.push_str(", ...");
            }
            out.push(']');
            out
        }
        v => v.to_string(),
    }
}

/// A metadata value as JSON; non-finite floats (no JSON form) become null.
fn value_json(v: &Value, full: bool) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        // Through the shortest f32 text, so 0.1f32 prints as 0.1, not 0.10000000149011612.
        Value::F32(x) => json!(format!("{x:?}").parse::<f64>().unwrap_or(*x as f64)),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(preview_str(s, full)),
        Value::Array(_, items) => {
            let shown = if full {
                items.len()
            } else {
                items.len().min(ARRAY_PREVIEW)
            };
            Json::Array(items[..shown].iter().map(|i| value_json(i, full)).collect())
        }
    }
}

fn shape_text(dims: &[u64]) -> String {
    if dims.is_empty() {
        return "scalar".to_string();
    }
    dims.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" x ")
}

/// 1234567 → "1.23 M" (powers of 1000, as parameter counts are usually given).
fn count_text(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    for (scale, unit) in UNITS {
        if n as f64 >= scale {
            return format!("{:.2} {unit}", n as f64 / scale);
        }
    }
    n.to_string()
}

/// Bytes in binary units: "85.03 MiB".
fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

fn opt_text<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

fn bpw_text(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| format!("{v:.2}"))
}

fn part_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

/// The human-readable report.
pub fn report_text(path: &str, model: &GgufModel, full: bool, with_tensors: bool) -> String {
    let md = model.metadata();
    let first = &model.parts[0].header;
    let (per_type, all) = totals(model);
    let mut o = String::new();
    let _ = writeln!(o, "model: {path}");
    if model.parts.len() > 1 {
        let _ = writeln!(o, "parts: {}", model.parts.len());
        for (i, p) in model.parts.iter().enumerate() {
            let _ = writeln!(
                o,
                "  {}: {} ({} tensors, {})",
                i + 1,
                part_name(&p.path),
                p.header.tensors.len(),
                bytes_text(p.source.len())
            );
        }
    }
    let text_key = |k: &str| md.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let _ = writeln!(o, "architecture: {}", text_key("general.architecture"));
    let _ = writeln!(o, "name: {}", text_key("general.name"));
    let _ = writeln!(
        o,
        "GGUF version {}, alignment {}",
        first.version, first.alignment
    );
    let _ = writeln!(
        o,
        "tensors: {}, parameters: {}, size: {}, bits per weight: {}",
        model.tensors().len(),
        count_text(all.elements),
        all.bytes.map_or("?".to_string(), bytes_text),
        bpw_text(all.bits_per_weight())
    );

    let _ = writeln!(o, "\nmetadata: {} keys", md.len());
    let key_width = md.iter().map(|(k, _)| k.len()).max().unwrap_or(0).min(48);
    for (key, value) in md.iter() {
        let count = match value {
            Value::Array(_, items) => format!("{:>8}", items.len()),
            _ => format!("{:>8}", 1),
        };
        let _ = writeln!(
            o,
            "  {key:<key_width$}  {:<10} {count} = {}",
            type_label(value),
            value_text(value, full)
        );
    }

    if with_tensors {
        let _ = writeln!(o, "\ntensors: {}", model.tensors().len());
        let name_width = model
            .tensors()
            .iter()
            .map(|t| t.name().len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            o,
            "  {:>5}  {:<name_width$}  {:<8} {:<24} {:>14} {:>14}  part",
            "#", "name", "type", "shape (ne)", "file offset", "bytes"
        );
        for (i, t) in model.tensors().iter().enumerate() {
            let _ = writeln!(
                o,
                "  {i:>5}  {:<name_width$}  {:<8} {:<24} {:>14} {:>14}  {}",
                t.name(),
                t.info.ty.name(),
                shape_text(&t.info.dims),
                t.data_start,
                opt_text(t.info.nbytes()),
                t.part + 1
            );
        }
    }

    let _ = writeln!(o, "\nper type:");
    let _ = writeln!(
        o,
        "  {:<10} {:>8} {:>16} {:>14} {:>8}",
        "type", "tensors", "parameters", "bytes", "bpw"
    );
    let rows = per_type.iter().map(|(ty, tt)| (ty.name(), tt));
    for (label, tt) in rows.chain([("total".to_string(), &all)]) {
        let _ = writeln!(
            o,
            "  {label:<10} {:>8} {:>16} {:>14} {:>8}",
            tt.tensors,
            tt.elements,
            opt_text(tt.bytes),
            bpw_text(tt.bits_per_weight())
        );
    }
    o
}

fn totals_json(ty: Option<GgmlType>, tt: &TypeTotals) -> Json {
    let mut j = json!({
        "tensors": tt.tensors,
        "elements": tt.elements,
        "bytes": tt.bytes,
        "bits_per_weight": tt.bits_per_weight(),
    });
    if let Some(ty) = ty {
        j["type"] = ty.name().into();
    }
    j
}

/// The report as one JSON object. Parts are numbered from 1, as in the file names.
pub fn report_json(path: &str, model: &GgufModel, full: bool, with_tensors: bool) -> Json {
    let md = model.metadata();
    let first = &model.parts[0].header;
    let (per_type, all) = totals(model);
    let parts: Vec<Json> = model
        .parts
        .iter()
        .map(|p| {
            json!({
                "path": p.path,
                "version": p.header.version,
                "alignment": p.header.alignment,
                "data_offset": p.header.data_offset,
                "file_size": p.source.len(),
                "n_kv": p.header.metadata.len(),
                "n_tensors": p.header.tensors.len(),
            })
        })
        .collect();
    let metadata: Vec<Json> = md
        .iter()
        .map(|(key, value)| {
            let mut j = json!({
                "key": key,
                "type": value.value_type().name(),
                "value": value_json(value, full),
            });
            if let Value::Array(elem, items) = value {
                j["array_type"] = elem.name().into();
                j["count"] = items.len().into();
            }
            j
        })
        .collect();
    let types: Vec<Json> = per_type
        .iter()
        .map(|(ty, tt)| totals_json(Some(*ty), tt))
        .collect();
    let mut report = json!({
        "path": path,
        "architecture": md.get("general.architecture").and_then(Value::as_str),
        "name": md.get("general.name").and_then(Value::as_str),
        "version": first.version,
        "parts": parts,
        "metadata": metadata,
        "n_tensors": model.tensors().len(),
        "types": types,
        "total": totals_json(None, &all),
    });
    if with_tensors {
        let tensors: Vec<Json> = model
            .tensors()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name(),
                    "type": t.info.ty.name(),
                    "type_id": t.info.ty.0,
                    "shape": t.info.dims,
                    "offset": t.info.offset,
                    "file_offset": t.data_start,
                    "bytes": t.info.nbytes(),
                    "part": t.part + 1,
                })
            })
            .collect();
        report["tensors"] = Json::Array(tensors);
    }
    report
}
