//! Turning GGUF tensors into backend weights, with llama.cpp's shape checks.
//!
//! Every tensor a model claims is checked against the shape the architecture expects, and a
//! missing required tensor is an error naming it. Matrices stay in their stored type (in place
//! when the file is memory-mapped); 1-D tensors (norms, biases) become `f32` rows, since
//! third-party files sometimes store them as f16/bf16.

use crate::backend::{Backend, WeightBytes, WeightData};
use crate::gguf::{GgufModel, ModelTensor};
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

/// Loads the tensors of one model onto one backend, remembering which were used.
pub struct Loader<'a, B: Backend> {
    pub gguf: &'a GgufModel,
    pub backend: &'a B,
    used: RefCell<HashSet<String>>,
}

impl<'a, B: Backend> Loader<'a, B> {
    pub fn new(gguf: &'a GgufModel, backend: &'a B) -> Self {
        Self {
            gguf,
            backend,
            used: RefCell::new(HashSet::new()),
        }
    }

    fn find(&self, name: &str) -> Option<&'a ModelTensor> {
        let t = self.gguf.tensor(name)?;
        self.used.borrow_mut().insert(name.to_string());
        Some(t)
    }

    fn require(&self, name: &str) -> Result<&'a ModelTensor> {
        self.find(name)
            .ok_or_else(|| Error::model(format!("required tensor {name} is missing")))
    }

    /// Checks a tensor's shape (ne order); trailing dims must be 1.
    fn check_shape(t: &ModelTensor, want: &[u64]) -> Result<()> {
        let ok = (0..4).all(|i| t.info.ne(i) == want.get(i).copied().unwrap_or(1));
        if ok {
            Ok(())
        } else {
            Err(Error::model(format!(
                "tensor {} has shape {:?}, expected {:?}",
                t.name(),
                t.info.dims,
                want
            )))
        }
    }

    /// The tensor's bytes: in place when its file is mapped, read otherwise.
    pub async fn bytes(&self, t: &ModelTensor) -> Result<WeightBytes> {
        let len = t.info.nbytes().ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor {} has ggml type {}, which sluice cannot read",
                t.name(),
                t.info.ty
            ))
        })?;
        let source = self.gguf.source_of(t);
        if source.as_slice().is_some() {
            Ok(WeightBytes::Mapped {
                source: source.clone(),
                offset: t.data_start,
                len,
            })
        } else {
            let data = self.gguf.read_tensor_range(t, 0, len as usize).await?;
            Ok(WeightBytes::Owned(Arc::new(data)))
        }
    }

    async fn weight_of(&self, t: &ModelTensor, shape: &[u64]) -> Result<B::Weight> {
        Self::check_shape(t, shape)?;
        let cols = t.info.ne(0) as usize;
        let rows = t.info.ne(1) as usize;
        let mats = (t.info.ne(2) * t.info.ne(3)) as usize;
        if t.info.ty.info().and_then(|i| i.dequant).is_none() {
            return Err(Error::Unsupported(format!(
                "tensor {} has type {}, which sluice cannot compute with",
                t.name(),
                t.info.ty
            )));
        }
        let bytes = self.bytes(t).await?;
        self.backend.load_weight(WeightData {
            name: t.name().to_string(),
            ty: t.info.ty,
            cols,
            rows,
            mats,
            bytes,
        })
    }

    /// A required matrix (or stack of matrices) of shape `shape` (ne order).
    pub async fn matrix(&self, name: &str, shape: &[u64]) -> Result<B::Weight> {
        let t = self.require(name)?;
        self.weight_of(t, shape).await
    }

    /// An optional matrix.
    pub async fn matrix_opt(&self, name: &str, shape: &[u64]) -> Result<Option<B::Weight>> {
        match self.find(name) {
            Some(t) => Ok(Some(self.weight_of(t, shape).await?)),
            None => Ok(None),
        }
    }

    /// A 1-D tensor as host floats.
    pub async fn floats_opt(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        let Some(t) = self.find(name) else {
            return Ok(None);
        };
        Self::check_shape(t, &[len as u64])?;
        let bytes = self.bytes(t).await?;
        let mut out = vec![0f32; len];
        t.info
            .ty
            .dequantize(bytes.bytes(), &mut out)
            .map_err(|e| Error::model(format!("tensor {}: {e}", t.name())))?;
        Ok(Some(out))
    }

    /// A required 1-D tensor (a norm weight) uploaded as a one-row tensor.
    pub async fn vector(&self, name: &str, len: usize) -> Result<B::Tensor> {
        let v = self
            .floats_opt(name, len)
            .await?
            .ok_or_else(|| Error::model(format!("required tensor {name} is missing")))?;
        self.backend.upload(&v, 1, len)
    }

    /// A `{1}` scale tensor, if present.
    pub async fn scalar_opt(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.floats_opt(name, 1).await?.map(|v| v[0]))
    }

    /// Checks a tensor's shape and marks it used without loading it (routed experts that an
    /// expert store reads itself). `Ok(false)` when the tensor is absent.
    pub fn claim_opt(&self, name: &str, shape: &[u64]) -> Result<bool> {
        match self.find(name) {
            Some(t) => Self::check_shape(t, shape).map(|()| true),
            None => Ok(false),
        }
    }

    /// As [`Loader::claim_opt`] for a required tensor.
    pub fn claim(&self, name: &str, shape: &[u64]) -> Result<()> {
        let t = self.require(name)?;
        Self::check_shape(t, shape)
    }

    /// Marks a tensor as deliberately ignored (MTP layers).
    pub fn skip(&self, name: &str) {
        self.used.borrow_mut().insert(name.to_string());
    }

    /// Names of tensors in the file that the model did not claim.
    pub fn unclaimed(&self) -> Vec<String> {
        let used = self.used.borrow();
        self.gguf
            .tensors()
            .iter()
            .map(|t| t.name())
            .filter(|n| !used.contains(*n))
            .map(str::to_string)
            .collect()
    }
}
