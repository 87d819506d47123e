//! The Llama forward pass (grouped-query attention, RoPE, SwiGLU): the same building blocks
//! as DeepSeek-V3, and the architecture of the real trained models we can test text with.

use super::config::Config;
use super::weights::Loader;
use super::{CacheRotation, Ffn, Scratch};
use crate::backend::{AttnParams, Backend, CacheSpec, Segments};
use crate::quant::GgmlType;
use crate::{Error, Result};

struct Layer<B: Backend> {
    attn_norm: B::Tensor,
    wq: B::Weight,
    wk: B::Weight,
    wv: B::Weight,
    wo: B::Weight,
    ffn_norm: B::Tensor,
    ffn: Ffn<B>,
}

/// A loaded `llama` network.
pub struct Llama<B: Backend> {
    cfg: Config,
    layers: Vec<Layer<B>>,
}

impl<B: Backend> Llama<B> {
    pub(super) async fn load(cfg: &Config, ld: &Loader<'_, B>) -> Result<Self> {
        let (n_embd, hd) = (cfg.n_embd as u64, cfg.head_dim_k as u64);
        if cfg.head_dim_k != cfg.head_dim_v || cfg.rope.n_rot != cfg.head_dim_k {
            return Err(Error::Unsupported(
                "llama models whose rotary dims differ from the head size".into(),
            ));
        }
        if cfg.n_ff == 0 {
            return Err(Error::model("llama.feed_forward_length is missing or 0"));
        }
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}");
            for unsupported in ["rope_freqs.weight", "attn_q.bias", "ffn_gate_inp.weight"] {
                if ld.gguf.tensor(&n(unsupported)).is_some() {
                    return Err(Error::Unsupported(format!(
                        "llama tensor {}",
                        n(unsupported)
                    )));
                }
            }
            layers.push(Layer {
                attn_norm: ld.vector(&n("attn_norm.weight"), cfg.n_embd).await?,
                wq: ld
                    .matrix(&n("attn_q.weight"), &[n_embd, hd * cfg.n_head as u64])
                    .await?,
                wk: ld
                    .matrix(&n("attn_k.weight"), &[n_embd, hd * cfg.n_head_kv as u64])
                    .await?,
                wv: ld
                    .matrix(&n("attn_v.weight"), &[n_embd, hd * cfg.n_head_kv as u64])
                    .await?,
                wo: ld
                    .matrix(&n("attn_output.weight"), &[hd * cfg.n_head as u64, n_embd])
                    .await?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"), cfg.n_embd).await?,
                ffn: Ffn::load(ld, l, "", cfg.n_embd, cfg.n_ff).await?,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            layers,
        })
    }

    pub(super) fn cache_spec(&self, n_ctx: usize, k_type: GgmlType, v_type: GgmlType) -> CacheSpec {
        let cols = self.cfg.n_head_kv * self.cfg.head_dim_k;
        CacheSpec {
            n_layer: self.cfg.n_layer,
            n_ctx,
            k_cols: cols,
            v_cols: Some(cols),
            k_type,
            v_type,
        }
    }

    pub(super) fn layers(
        &self,
        be: &B,
        cache: &mut B::Cache,
        x: &mut B::Tensor,
        start: usize,
        rot: CacheRotation,
        s: &mut Scratch<B>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let t = be.shape(x).0;
        let hd = cfg.head_dim_k;
        let positions: Vec<u32> = (start..start + t).map(|p| p as u32).collect();
        let attn = AttnParams {
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim_k: hd,
            head_dim_v: hd,
            scale: cfg.kq_scale,
        };
        for (l, layer) in self.layers.iter().enumerate() {
            be.enter_layer(Some(l));
            let mut h = s.take_new(be, "h", t, cfg.n_embd);
            be.rms_norm(
                x,
                &layer.attn_norm,
                Segments::whole(cfg.n_embd),
                cfg.rms_eps,
                &mut h,
            )?;
            let mut q = s.take_new(be, "q", t, cfg.n_head * hd);
            let mut k = s.take_new(be, "k", t, cfg.n_head_kv * hd);
            let mut v = s.take_new(be, "v", t, cfg.n_head_kv * hd);
            be.matmul(&layer.wq, &h, &mut q)?;
            be.matmul(&layer.wk, &h, &mut k)?;
            be.matmul(&layer.wv, &h, &mut v)?;
            be.rope(
                &mut q,
                Segments::packed(cfg.n_head, hd),
                &positions,
                &cfg.rope,
            )?;
            be.rope(
                &mut k,
                Segments::packed(cfg.n_head_kv, hd),
                &positions,
                &cfg.rope,
            )?;
            if let Some(n) = rot.k {
                be.hadamard(&mut q, n)?;
                be.hadamard(&mut k, n)?;
            }
            if let Some(n) = rot.v {
                be.hadamard(&mut v, n)?;
            }
            be.cache_store(cache, l, start, &k, Some(&v))?;
            let mut o = s.take_new(be, "o", t, cfg.n_head * hd);
            be.attention(cache, l, &q, start, &attn, &mut o)?;
            if let Some(n) = rot.v {
                be.hadamard(&mut o, n)?;
            }
            let mut a = s.take_new(be, "a", t, cfg.n_embd);
            be.matmul(&layer.wo, &o, &mut a)?;
            be.add_assign(x, &a)?;
            be.rms_norm(
                x,
                &layer.ffn_norm,
                Segments::whole(cfg.n_embd),
                cfg.rms_eps,
                &mut h,
            )?;
            layer.ffn.forward(be, &h, &mut a, s)?;
            be.add_assign(x, &a)?;
            for (name, tensor) in [("h", h), ("q", q), ("k", k), ("v", v), ("o", o), ("a", a)] {
                s.put(name, tensor);
            }
        }
        Ok(())
    }
}
