//! `sluice info MODEL.gguf`: what a model file holds, read from the headers only.
//!
//! Given any part of a split model it shows the whole model: architecture and name, GGUF
//! version, metadata (long arrays and strings abbreviated the way gguf-py's `gguf_dump` does,
//! everything with `--full`), a tensor table (name, type, shape in ggml `ne` order, offset,
//! bytes, part) and the totals per quant type with bits per weight. `--json` prints the same
//! as one JSON object. No tensor data is read, so it is fast on any model size.

use crate::json::Json;
use crate::open::{open_model, LocalAccess};
use anyhow::Result;
use sluice_core::gguf::{GgufModel, ModelTensor, Value, ValueType};
use sluice_core::quant::GgmlType;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

/// Show a GGUF model's metadata, tensors and size per quant type.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model file (any part of a split model finds the others).
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
}

/// Arrays show this many elements unless `--full` (as gguf_dump does).
const ARRAY_PREVIEW: usize = 6;
/// Strings longer than this are cut to `STRING_PREVIEW - 3` characters and "..." (gguf_dump).
const STRING_PREVIEW: usize = 60;

pub fn run(args: Args) -> Result<()> {
    let model = open_model(&args.model, LocalAccess::Mmap)?;
    let text = if args.json {
        let mut s = report_json(&args.model, &model, args.full, !args.no_tensors).to_json_string();
        s.push('\n');
        s
    } else {
        report_text(&args.model, &model, args.full, !args.no_tensors)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
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
            let shown = if full { items.len() } else { items.len().min(ARRAY_PREVIEW) };
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

fn value_json(v: &Value, full: bool) -> Json {
    match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        // Through the shortest f32 text, so 0.1f32 prints as 0.1, not 0.10000000149011612.
        Value::F32(x) => Json::Float(format!("{x:?}").parse().unwrap_or(*x as f64)),
        Value::F64(x) => Json::Float(*x),
        Value::Bool(x) => (*x).into(),
        Value::String(s) => preview_str(s, full).into(),
        Value::Array(_, items) => {
            let shown = if full { items.len() } else { items.len().min(ARRAY_PREVIEW) };
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
    let j = match ty {
        Some(ty) => Json::object().with("type", ty.name()),
        None => Json::object(),
    };
    j.with("tensors", tt.tensors)
        .with("elements", tt.elements)
        .with("bytes", tt.bytes)
        .with("bits_per_weight", tt.bits_per_weight())
}

/// The report as one JSON object.
pub fn report_json(path: &str, model: &GgufModel, full: bool, with_tensors: bool) -> Json {
    let md = model.metadata();
    let first = &model.parts[0].header;
    let (per_type, all) = totals(model);
    let parts: Vec<Json> = model
        .parts
        .iter()
        .map(|p| {
            Json::object()
                .with("path", p.path.as_str())
                .with("version", p.header.version)
                .with("alignment", p.header.alignment)
                .with("data_offset", p.header.data_offset)
                .with("file_size", p.source.len())
                .with("n_kv", p.header.metadata.len())
                .with("n_tensors", p.header.tensors.len())
        })
        .collect();
    let metadata: Vec<Json> = md
        .iter()
        .map(|(key, value)| {
            let mut j = Json::object()
                .with("key", key)
                .with("type", value.value_type().name());
            if let Value::Array(elem, items) = value {
                j = j.with("array_type", elem.name()).with("count", items.len());
            }
            j.with("value", value_json(value, full))
        })
        .collect();
    let mut report = Json::object()
        .with("path", path)
        .with(
            "architecture",
            md.get("general.architecture").and_then(Value::as_str),
        )
        .with("name", md.get("general.name").and_then(Value::as_str))
        .with("version", first.version)
        .with("parts", Json::Array(parts))
        .with("metadata", Json::Array(metadata));
    if with_tensors {
        let tensors: Vec<Json> = model
            .tensors()
            .iter()
            .map(|t| {
                Json::object()
                    .with("name", t.name())
                    .with("type", t.info.ty.name())
                    .with("type_id", t.info.ty.0)
                    .with("shape", t.info.dims.clone())
                    .with("offset", t.info.offset)
                    .with("file_offset", t.data_start)
                    .with("bytes", t.info.nbytes())
                    .with("part", t.part + 1)
            })
            .collect();
        report = report.with("tensors", Json::Array(tensors));
    }
    let types: Vec<Json> = per_type
        .iter()
        .map(|(ty, tt)| totals_json(Some(*ty), tt))
        .collect();
    report
        .with("n_tensors", model.tensors().len())
        .with("types", Json::Array(types))
        .with("total", totals_json(None, &all))
}
