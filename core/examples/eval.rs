//! Developer tool: evaluate token ids with a GGUF model and print the top logits.
//! usage: cargo run --example eval -p sluice-core -- MODEL.gguf ID ID ...
use sluice_core::backend::Backend;
use sluice_core::cpu::CpuBackend;
use sluice_core::gguf::{GgufModel, SourceOpener};
use sluice_core::model::{LoadOptions, Logits, Model};
use sluice_core::quant::GgmlType;
use sluice_core::source::{block_on, ByteSource, LocalBoxFuture, MemorySource};
use std::sync::Arc;

struct ReadOpener;
impl SourceOpener for ReadOpener {
    fn open<'a>(
        &'a self,
        path: &'a str,
    ) -> LocalBoxFuture<'a, sluice_core::Result<Arc<dyn ByteSource>>> {
        let r = std::fs::read(path)
            .map(|b| Arc::new(MemorySource::from_vec(path, b)) as Arc<dyn ByteSource>)
            .map_err(|e| sluice_core::Error::io(path, e.to_string()));
        Box::pin(std::future::ready(r))
    }
}

fn main() -> sluice_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ids: Vec<u32> = args[2..].iter().map(|s| s.parse().unwrap()).collect();
    let gguf = block_on(GgufModel::open(&args[1], &ReadOpener))?;
    let t0 = std::time::Instant::now();
    let model = block_on(Model::load(
        &gguf,
        CpuBackend::new(
            std::env::var("T")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )?,
        LoadOptions::default(),
    ))?;
    eprintln!(
        "loaded in {:?}: {}",
        t0.elapsed(),
        model.backend().describe()
    );
    let mut s = model.session(512, GgmlType::F16, GgmlType::F16)?;
    let t0 = std::time::Instant::now();
    let logits = block_on(s.eval(&ids, Logits::All))?;
    eprintln!("eval {} tokens in {:?}", ids.len(), t0.elapsed());
    let nv = model.n_vocab;
    for (p, row) in logits.chunks(nv).enumerate() {
        let mut idx: Vec<usize> = (0..nv).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        println!(
            "pos {p}: {:?}",
            idx[..5].iter().map(|&i| (i, row[i])).collect::<Vec<_>>()
        );
    }
    Ok(())
}
