//! The DeepSeek-V2/V3 (`deepseek2`) forward pass, written once against [`Backend`].
//!
//! Follows llama.cpp's graph (deepseek2-gguf.md §4): multi-head latent attention in the
//! absorbed form for files with `attn_k_b`/`attn_v_b` (the cache holds the compressed latent
//! plus the shared rotary key, 576 values per token for V3) and in the plain multi-head form
//! for legacy files with `attn_kv_b`; leading dense FFN layers; mixture-of-experts layers with
//! host-side routing (see `routing`) through the [`ExpertStore`], plus the shared expert.

use super::config::{Config, DeepSeekConfig};
use super::routing::{route, RoutingParams};
use super::weights::Loader;
use super::{CacheRotation, Ffn, RoutingAblation, Scratch};
use crate::backend::{AttnParams, Backend, CacheSpec, ExpertJob, Segments};
use crate::experts::{Expert, ExpertStore, ResidentExperts};
use crate::{Error, Result};
use std::sync::Arc;

enum QueryProj<B: Backend> {
    Lora {
        a: B::Weight,
        norm: B::Tensor,
        b: B::Weight,
    },
    Plain(B::Weight),
}

enum KvUp<B: Backend> {
    /// Absorbed MLA: per-head `k_b` (kv_lora × d_nope) and `v_b` (d_v × kv_lora).
    Split { k_b: B::Weight, v_b: B::Weight },
    /// Legacy: `kv_b` maps the latent to per-head [k_nope | v].
    Joint(B::Weight),
}

struct MoeLayer<B: Backend> {
    router: B::Weight,
    bias: Option<Vec<f32>>,
    shared: Option<Ffn<B>>,
}

enum FfnKind<B: Backend> {
    Dense(Ffn<B>),
    Moe(MoeLayer<B>),
}

struct Layer<B: Backend> {
    attn_norm: B::Tensor,
    q: QueryProj<B>,
    kv_a: B::Weight,
    kv_a_norm: B::Tensor,
    kv_up: KvUp<B>,
    wo: B::Weight,
    wo_scale: Option<f32>,
    ffn_norm: B::Tensor,
    ffn: FfnKind<B>,
}

/// A loaded `deepseek2` network.
pub struct DeepSeek2<B: Backend> {
    cfg: Config,
    ds: DeepSeekConfig,
    layers: Vec<Layer<B>>,
    pub(super) experts: Box<dyn ExpertStore<B>>,
    routing: RoutingParams,
    ignore_bias: bool,
}

/// The stacked routed-expert tensors of a MoE layer (`blk.{l}.{name}.weight`), in either
/// layout (separate gate and up, or fused `gate_up`).
pub const EXPERT_TENSORS: [&str; 4] = [
    "ffn_gate_exps",
    "ffn_up_exps",
    "ffn_gate_up_exps",
    "ffn_down_exps",
];

fn u(x: usize) -> u64 {
    x as u64
}

impl<B: Backend + 'static> DeepSeek2<B> {
    pub(super) async fn load(
        cfg: &Config,
        ld: &Loader<'_, B>,
        store: Option<Box<dyn ExpertStore<B>>>,
        ablation: RoutingAblation,
    ) -> Result<Self> {
        let ds = cfg
            .deepseek
            .clone()
            .ok_or_else(|| Error::model("not a deepseek2 config"))?;
        let (n_embd, n_head) = (cfg.n_embd, cfg.n_head);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        let mut resident: Vec<Vec<Arc<Expert<B::Weight>>>> = Vec::new();
        for l in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}");
            let q = if ds.q_lora > 0 {
                QueryProj::Lora {
                    a: ld
                        .matrix(&n("attn_q_a.weight"), &[u(n_embd), u(ds.q_lora)])
                        .await?,
                    norm: ld.vector(&n("attn_q_a_norm.weight"), ds.q_lora).await?,
                    b: ld
                        .matrix(&n("attn_q_b.weight"), &[u(ds.q_lora), u(n_head * ds.d_qk)])
                        .await?,
                }
            } else {
                QueryProj::Plain(
                    ld.matrix(&n("attn_q.weight"), &[u(n_embd), u(n_head * ds.d_qk)])
                        .await?,
                )
            };
            let kv_up = if ds.mla {
                KvUp::Split {
                    k_b: ld
                        .matrix(
                            &n("attn_k_b.weight"),
                            &[u(ds.d_nope), u(ds.kv_lora), u(n_head)],
                        )
                        .await?,
                    v_b: ld
                        .matrix(
                            &n("attn_v_b.weight"),
                            &[u(ds.kv_lora), u(ds.d_v), u(n_head)],
                        )
                        .await?,
                }
            } else {
                KvUp::Joint(
                    ld.matrix(
                        &n("attn_kv_b.weight"),
                        &[u(ds.kv_lora), u(n_head * (ds.d_nope + ds.d_v))],
                    )
                    .await?,
                )
            };
            let ffn = if l < ds.n_dense {
                resident.push(Vec::new());
                FfnKind::Dense(Ffn::load(ld, l, "", n_embd, cfg.n_ff).await?)
            } else {
                if ds.n_expert == 0 || ds.n_expert_used == 0 {
                    return Err(Error::model(format!(
                        "layer {l} is a MoE layer but the model has no experts"
                    )));
                }
                resident.push(if store.is_none() {
                    load_experts(ld, l, n_embd, &ds).await?
                } else {
                    claim_experts(ld, l, n_embd, &ds)?;
                    Vec::new()
                });
                let shared = if ds.n_shared > 0 {
                    Some(Ffn::load(ld, l, "_shexp", n_embd, ds.n_ff_exp * ds.n_shared).await?)
                } else {
                    None
                };
                FfnKind::Moe(MoeLayer {
                    router: ld
                        .matrix(&n("ffn_gate_inp.weight"), &[u(n_embd), u(ds.n_expert)])
                        .await?,
                    bias: ld.floats_opt(&n("exp_probs_b.bias"), ds.n_expert).await?,
                    shared,
                })
            };
            layers.push(Layer {
                attn_norm: ld.vector(&n("attn_norm.weight"), n_embd).await?,
                q,
                kv_a: ld
                    .matrix(
                        &n("attn_kv_a_mqa.weight"),
                        &[u(n_embd), u(ds.kv_lora + ds.d_rope)],
                    )
                    .await?,
                kv_a_norm: ld.vector(&n("attn_kv_a_norm.weight"), ds.kv_lora).await?,
                kv_up,
                wo: ld
                    .matrix(&n("attn_output.weight"), &[u(n_head * ds.d_v), u(n_embd)])
                    .await?,
                wo_scale: ld.scalar_opt(&n("attn_output.scale")).await?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"), n_embd).await?,
                ffn,
            });
        }
        let experts = match store {
            Some(s) => s,
            None => Box::new(ResidentExperts::new(resident)) as Box<dyn ExpertStore<B>>,
        };
        let routing = RoutingParams {
            n_expert: ds.n_expert,
            k_used: ds.n_expert_used,
            gating: ds.gating,
            n_group: if ablation.ignore_groups {
                0
            } else {
                ds.n_group
            },
            n_group_used: ds.n_group_used,
            norm: ds.weights_norm,
            scale: ds.weights_scale,
        };
        Ok(Self {
            cfg: cfg.clone(),
            ds,
            layers,
            experts,
            routing,
            ignore_bias: ablation.ignore_bias,
        })
    }

    /// The KV cache this network needs for `n_ctx` tokens.
    pub(super) fn cache_spec(
        &self,
        n_ctx: usize,
        k_type: crate::quant::GgmlType,
        v_type: crate::quant::GgmlType,
    ) -> CacheSpec {
        let ds = &self.ds;
        if ds.mla {
            CacheSpec {
                n_layer: self.cfg.n_layer,
                n_ctx,
                k_cols: ds.kv_lora + ds.d_rope,
                v_cols: None,
                k_type,
                v_type,
            }
        } else {
            let h = self.cfg.n_head;
            CacheSpec {
                n_layer: self.cfg.n_layer,
                n_ctx,
                k_cols: h * ds.d_qk,
                v_cols: Some(h * ds.d_v),
                k_type,
                v_type,
            }
        }
    }

    /// Runs all layers over `x` (`[T][n_embd]`, tokens at positions `start..`), in place.
    pub(super) async fn layers(
        &self,
        be: &B,
        cache: &mut B::Cache,
        x: &mut B::Tensor,
        start: usize,
        rot: CacheRotation,
        s: &mut Scratch<B>,
    ) -> Result<()> {
        let (cfg, ds) = (&self.cfg, &self.ds);
        let t = be.shape(x).0;
        let n_head = cfg.n_head;
        let kv_row = ds.kv_lora + ds.d_rope;
        let positions: Vec<u32> = (start..start + t).map(|p| p as u32).collect();
        let q_rope = Segments {
            groups: n_head,
            stride: ds.d_qk,
            offset: ds.d_nope,
            len: ds.d_rope,
        };
        let k_rope = Segments {
            groups: 1,
            stride: kv_row,
            offset: ds.kv_lora,
            len: ds.d_rope,
        };
        let latent = Segments {
            groups: 1,
            stride: kv_row,
            offset: 0,
            len: ds.kv_lora,
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
            // Query.
            let mut q = s.take_new(be, "q", t, n_head * ds.d_qk);
            match &layer.q {
                QueryProj::Lora { a, norm, b } => {
                    let mut qa = s.take_new(be, "qa", t, ds.q_lora);
                    be.matmul(a, &h, &mut qa)?;
                    let mut qn = s.take_new(be, "qa_norm", t, ds.q_lora);
                    be.rms_norm(&qa, norm, Segments::whole(ds.q_lora), cfg.rms_eps, &mut qn)?;
                    s.put("qa", qa);
                    be.matmul(b, &qn, &mut q)?;
                    s.put("qa_norm", qn);
                }
                QueryProj::Plain(w) => be.matmul(w, &h, &mut q)?,
            }
            // Compressed KV: normed latent, then the shared rotary key.
            let mut kvp = s.take_new(be, "kvp", t, kv_row);
            be.matmul(&layer.kv_a, &h, &mut kvp)?;
            let mut kv = s.take_new(be, "kv", t, kv_row);
            be.rms_norm(&kvp, &layer.kv_a_norm, latent, cfg.rms_eps, &mut kv)?;
            s.put("kvp", kvp);
            be.rope(&mut q, q_rope, &positions, &cfg.rope)?;
            be.rope(&mut kv, k_rope, &positions, &cfg.rope)?;
            let mut heads_out = s.take_new(be, "heads_out", t, n_head * ds.d_v);
            let attn = AttnParams {
                n_head,
                n_head_kv: 1,
                head_dim_k: kv_row,
                head_dim_v: ds.kv_lora,
                scale: cfg.kq_scale,
            };
            match &layer.kv_up {
                KvUp::Split { k_b, v_b } => {
                    be.cache_store(cache, l, start, &kv, None)?;
                    // Q = [k_b · q_nope | q_pe] per head, matching the cached [latent | k_pe].
                    let mut qm = s.take_new(be, "q_mla", t, n_head * kv_row);
                    let nope = Segments {
                        groups: n_head,
                        stride: ds.d_qk,
                        offset: 0,
                        len: ds.d_nope,
                    };
                    let absorbed = Segments {
                        groups: n_head,
                        stride: kv_row,
                        offset: 0,
                        len: ds.kv_lora,
                    };
                    be.matmul_groups(k_b, &q, nope, &mut qm, absorbed)?;
                    let pe_dst = Segments {
                        groups: n_head,
                        stride: kv_row,
                        offset: ds.kv_lora,
                        len: ds.d_rope,
                    };
                    be.copy_segments(&q, q_rope, &mut qm, pe_dst)?;
                    let mut lat = s.take_new(be, "latent_out", t, n_head * ds.kv_lora);
                    be.attention(cache, l, &qm, start, &attn, &mut lat)?;
                    be.matmul_groups(
                        v_b,
                        &lat,
                        Segments::packed(n_head, ds.kv_lora),
                        &mut heads_out,
                        Segments::packed(n_head, ds.d_v),
                    )?;
                    s.put("q_mla", qm);
                    s.put("latent_out", lat);
                }
                KvUp::Joint(kv_b) => {
                    let mut c = s.take_new(be, "c", t, ds.kv_lora);
                    be.copy_segments(&kv, latent, &mut c, Segments::whole(ds.kv_lora))?;
                    let per_head = ds.d_nope + ds.d_v;
                    let mut kvh = s.take_new(be, "kv_heads", t, n_head * per_head);
                    be.matmul(kv_b, &c, &mut kvh)?;
                    let mut k = s.take_new(be, "k_full", t, n_head * ds.d_qk);
                    let mut v = s.take_new(be, "v_full", t, n_head * ds.d_v);
                    be.copy_segments(
                        &kvh,
                        Segments {
                            groups: n_head,
                            stride: per_head,
                            offset: 0,
                            len: ds.d_nope,
                        },
                        &mut k,
                        Segments {
                            groups: n_head,
                            stride: ds.d_qk,
                            offset: 0,
                            len: ds.d_nope,
                        },
                    )?;
                    // The single rotary key is shared by every head (stride 0 broadcasts it).
                    be.copy_segments(
                        &kv,
                        Segments {
                            groups: n_head,
                            stride: 0,
                            offset: ds.kv_lora,
                            len: ds.d_rope,
                        },
                        &mut k,
                        q_rope,
                    )?;
                    be.copy_segments(
                        &kvh,
                        Segments {
                            groups: n_head,
                            stride: per_head,
                            offset: ds.d_nope,
                            len: ds.d_v,
                        },
                        &mut v,
                        Segments::packed(n_head, ds.d_v),
                    )?;
                    if let Some(n) = rot.k {
                        be.hadamard(&mut q, n)?;
                        be.hadamard(&mut k, n)?;
                    }
                    if let Some(n) = rot.v {
                        be.hadamard(&mut v, n)?;
                    }
                    be.cache_store(cache, l, start, &k, Some(&v))?;
                    let mha = AttnParams {
                        n_head,
                        n_head_kv: n_head,
                        head_dim_k: ds.d_qk,
                        head_dim_v: ds.d_v,
                        scale: cfg.kq_scale,
                    };
                    be.attention(cache, l, &q, start, &mha, &mut heads_out)?;
                    if let Some(n) = rot.v {
                        be.hadamard(&mut heads_out, n)?;
                    }
                    s.put("c", c);
                    s.put("kv_heads", kvh);
                    s.put("k_full", k);
                    s.put("v_full", v);
                }
            }
            s.put("q", q);
            s.put("kv", kv);
            let mut a = s.take_new(be, "a", t, cfg.n_embd);
            be.matmul(&layer.wo, &heads_out, &mut a)?;
            s.put("heads_out", heads_out);
            if let Some(sc) = layer.wo_scale {
                be.scale(&mut a, sc)?;
            }
            be.add_assign(x, &a)?;
            s.put("a", a);
            s.put("h", h);
            if self.experts.wants_prefetch() {
                self.prefetch_next(be, l + 1, x, s).await?;
            }

            let mut h2 = s.take_new(be, "h", t, cfg.n_embd);
            be.rms_norm(
                x,
                &layer.ffn_norm,
                Segments::whole(cfg.n_embd),
                cfg.rms_eps,
                &mut h2,
            )?;
            let mut f = s.take_new(be, "f", t, cfg.n_embd);
            match &layer.ffn {
                FfnKind::Dense(ffn) => ffn.forward(be, &h2, &mut f, s)?,
                FfnKind::Moe(moe) => self.moe(be, l, moe, &h2, &mut f, s).await?,
            }
            be.add_assign(x, &f)?;
            s.put("f", f);
            s.put("h", h2);
        }
        Ok(())
    }

    /// Predicts the experts of MoE layer `next` by applying its FFN norm and router to the
    /// hidden state after the current layer's attention, routes on the host with the real
    /// rules, and hands the store the union, most-chosen first.
    async fn prefetch_next(
        &self,
        be: &B,
        next: usize,
        x: &B::Tensor,
        s: &mut Scratch<B>,
    ) -> Result<()> {
        let Some(Layer {
            ffn_norm,
            ffn: FfnKind::Moe(moe),
            ..
        }) = self.layers.get(next)
        else {
            return Ok(());
        };
        let t = be.shape(x).0;
        let mut h = s.take_new(be, "predict_h", t, self.cfg.n_embd);
        be.rms_norm(
            x,
            ffn_norm,
            Segments::whole(self.cfg.n_embd),
            self.cfg.rms_eps,
            &mut h,
        )?;
        let mut logits = s.take_new(be, "predict_router", t, self.ds.n_expert);
        be.matmul(&moe.router, &h, &mut logits)?;
        let host = be.download(&logits).await?;
        s.put("predict_h", h);
        s.put("predict_router", logits);
        let bias = if self.ignore_bias {
            None
        } else {
            moe.bias.as_deref()
        };
        let r = route(&self.routing, &host, bias);
        let mut votes = vec![0u32; self.ds.n_expert];
        for &e in &r.experts {
            if let Some(v) = votes.get_mut(e as usize) {
                *v += 1;
            }
        }
        let mut ids: Vec<u32> = (0..self.ds.n_expert as u32)
            .filter(|&e| votes[e as usize] > 0)
            .collect();
        ids.sort_by(|a, b| votes[*b as usize].cmp(&votes[*a as usize]).then(a.cmp(b)));
        self.experts.prefetch(be, next, &ids);
        Ok(())
    }

    async fn moe(
        &self,
        be: &B,
        l: usize,
        moe: &MoeLayer<B>,
        h: &B::Tensor,
        out: &mut B::Tensor,
        s: &mut Scratch<B>,
    ) -> Result<()> {
        let t = be.shape(h).0;
        let k = self.routing.k_used;
        let mut logits = s.take_new(be, "router", t, self.ds.n_expert);
        be.matmul(&moe.router, h, &mut logits)?;
        let host = be.download(&logits).await?;
        s.put("router", logits);
        let bias = if self.ignore_bias {
            None
        } else {
            moe.bias.as_deref()
        };
        let r = route(&self.routing, &host, bias);
        // Group the (token, slot) pairs by expert so each expert runs once per batch.
        let mut ids: Vec<u32> = r.experts.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut x_rows: Vec<Vec<u32>> = vec![Vec::new(); ids.len()];
        let mut out_rows: Vec<Vec<u32>> = vec![Vec::new(); ids.len()];
        for (slot, &e) in r.experts.iter().enumerate() {
            let j = ids.binary_search(&e).unwrap_or(0);
            x_rows[j].push((slot / k) as u32);
            out_rows[j].push(slot as u32);
        }
        let mut slots = s.take_new(be, "slots", t * k, self.cfg.n_embd);
        // In groups the expert store can hold at once (all of them when resident); each
        // group's handles are released before the next group is fetched.
        let per_call = self.experts.experts_per_call(l).max(1);
        for (g, group) in ids.chunks(per_call).enumerate() {
            let first = g * per_call;
            let experts = self.experts.experts(be, l, group).await?;
            let jobs: Vec<ExpertJob<'_, B::Weight>> = experts
                .iter()
                .enumerate()
                .map(|(j, ex)| ExpertJob {
                    gate: &ex.gate,
                    up: &ex.up,
                    down: &ex.down,
                    x_rows: &x_rows[first + j],
                    out_rows: &out_rows[first + j],
                })
                .collect();
            be.moe_experts(&jobs, h, &mut slots)?;
        }
        be.moe_combine(&slots, &r.weights, k, out)?;
        s.put("slots", slots);
        if let Some(shared) = &moe.shared {
            let mut sh = s.take_new(be, "shared", t, self.cfg.n_embd);
            shared.forward(be, h, &mut sh, s)?;
            be.add_assign(out, &sh)?;
            s.put("shared", sh);
        }
        Ok(())
    }
}

/// Checks the shapes of layer `l`'s stacked expert tensors and marks them used, for a store
/// that reads the experts itself.
fn claim_experts(
    ld: &Loader<'_, impl Backend>,
    l: usize,
    n_embd: usize,
    ds: &DeepSeekConfig,
) -> Result<()> {
    let (ne, ff) = (ds.n_expert, ds.n_ff_exp);
    let n = |s: &str| format!("blk.{l}.{s}");
    ld.claim(&n("ffn_down_exps.weight"), &[u(ff), u(n_embd), u(ne)])?;
    if !ld.claim_opt(
        &n("ffn_gate_up_exps.weight"),
        &[u(n_embd), u(2 * ff), u(ne)],
    )? {
        ld.claim(&n("ffn_gate_exps.weight"), &[u(n_embd), u(ff), u(ne)])?;
        ld.claim(&n("ffn_up_exps.weight"), &[u(n_embd), u(ff), u(ne)])?;
    }
    Ok(())
}

/// Each expert's slabs cut out of the stacked expert tensors of layer `l`.
async fn load_experts<B: Backend>(
    ld: &Loader<'_, B>,
    l: usize,
    n_embd: usize,
    ds: &DeepSeekConfig,
) -> Result<Vec<Arc<Expert<B::Weight>>>> {
    let (ne, ff) = (ds.n_expert, ds.n_ff_exp);
    let n = |s: &str| format!("blk.{l}.{s}");
    let be = ld.backend;
    let down = ld
        .matrix(&n("ffn_down_exps.weight"), &[u(ff), u(n_embd), u(ne)])
        .await?;
    let fused = ld
        .matrix_opt(
            &n("ffn_gate_up_exps.weight"),
            &[u(n_embd), u(2 * ff), u(ne)],
        )
        .await?;
    let (gate, up) = match &fused {
        Some(_) => (None, None),
        None => (
            Some(
                ld.matrix(&n("ffn_gate_exps.weight"), &[u(n_embd), u(ff), u(ne)])
                    .await?,
            ),
            Some(
                ld.matrix(&n("ffn_up_exps.weight"), &[u(n_embd), u(ff), u(ne)])
                    .await?,
            ),
        ),
    };
    let mut out = Vec::with_capacity(ne);
    for e in 0..ne {
        let (g, up_w) = match (&fused, &gate, &up) {
            (Some(gu), _, _) => (
                be.weight_rows(gu, e * 2 * ff, ff)?,
                be.weight_rows(gu, e * 2 * ff + ff, ff)?,
            ),
            (None, Some(g), Some(u)) => (
                be.weight_rows(g, e * ff, ff)?,
                be.weight_rows(u, e * ff, ff)?,
            ),
            _ => {
                return Err(Error::model(format!(
                    "layer {l}: expert gate/up tensors are missing"
                )))
            }
        };
        out.push(Arc::new(Expert {
            gate: g,
            up: up_w,
            down: be.weight_rows(&down, e * n_embd, n_embd)?,
        }));
    }
    Ok(out)
}
