//! All parameters live in one flat buffer addressed through a size table (llm.c style); the
//! gradients and every optimiser state buffer use the same layout, so an optimiser is one
//! loop over one slice.
//!
//! Names and shapes are PyTorch's `state_dict` of `nn.Embedding` + `nn.RNN` + `nn.Linear`
//! (SPEC §3), so a checkpoint loads into PyTorch.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

use crate::config::{Init, ModelConfig, Role};
use crate::error::{Error, Result};

/// Every tensor starts at a multiple of this many floats (256 bytes): the GPU path binds
/// tensors as sub-ranges of the one flat buffer, and storage-buffer binding offsets must be a
/// multiple of `min_storage_buffer_offset_alignment`, which is at most 256 on every adapter.
/// The padding floats are zero in every buffer and stay zero under every optimiser.
pub const TENSOR_ALIGN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl TensorSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Indices into `ParamLayout::tensors` for one direction of one recurrent layer; the biases
/// are absent in a bias-free model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerIdx {
    pub w_ih: usize,
    pub w_hh: usize,
    pub b_ih: Option<usize>,
    pub b_hh: Option<usize>,
}

/// The size table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub tensors: Vec<TensorSpec>,
    pub embed: Option<usize>,
    /// [layer][direction]: one direction, or two for a bidirectional model
    pub layers: Vec<Vec<LayerIdx>>,
    pub head_w: usize,
    pub head_b: Option<usize>,
    /// Length of the flat buffer, padding included.
    pub total: usize,
}

impl ParamLayout {
    pub fn new(cfg: &ModelConfig) -> Self {
        let mut tensors = Vec::new();
        let mut offset = 0;
        let mut embed = None;
        let mut layers = vec![vec![LayerIdx::default(); cfg.dirs()]; cfg.layers];
        let (mut head_w, mut head_b) = (0, None);
        for (i, def) in cfg.tensors().into_iter().enumerate() {
            let len: usize = def.shape.iter().product();
            match def.role {
                Role::Embed => embed = Some(i),
                Role::WeightIh(l, d) => layers[l][d].w_ih = i,
                Role::WeightHh(l, d) => layers[l][d].w_hh = i,
                Role::BiasIh(l, d) => layers[l][d].b_ih = Some(i),
                Role::BiasHh(l, d) => layers[l][d].b_hh = Some(i),
                Role::HeadWeight => head_w = i,
                Role::HeadBias => head_b = Some(i),
            }
            tensors.push(TensorSpec {
                name: def.name,
                shape: def.shape,
                offset,
            });
            offset += len.div_ceil(TENSOR_ALIGN) * TENSOR_ALIGN;
        }
        ParamLayout {
            tensors,
            embed,
            layers,
            head_w,
            head_b,
            total: offset,
        }
    }

    pub fn range(&self, idx: usize) -> Range<usize> {
        self.tensors[idx].range()
    }

    /// Errors unless `len` floats are this layout's flat buffer: `op` and `what` name the
    /// call and the argument (parameters, gradients) in the message.
    pub fn check_len(&self, op: &'static str, what: &str, len: usize, hint: &str) -> Result<()> {
        if len != self.total {
            return Err(Error::shape(op, what, len, self.total, hint));
        }
        Ok(())
    }

    /// Number of real (unpadded) parameters.
    pub fn count(&self) -> usize {
        self.tensors.iter().map(TensorSpec::len).sum()
    }

    pub fn find(&self, name: &str) -> Option<&TensorSpec> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Seeded, reproducible initialisation (SPEC §3) into a fresh flat buffer.
    pub fn init(&self, cfg: &ModelConfig, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![0.0f32; self.total];
        let k = 1.0 / (cfg.hidden as f32).sqrt();
        let uniform = |rng: &mut ChaCha8Rng, s: &mut [f32]| {
            for v in s {
                *v = rng.random_range(-k..k);
            }
        };
        if let Some(e) = self.embed {
            for v in &mut p[self.range(e)] {
                *v = normal(&mut rng);
            }
        }
        // in storage order, so a unidirectional model with biases draws the stream it always did
        for li in self.layers.iter().flatten() {
            match cfg.init {
                Init::Default => {
                    let biases = li.b_ih.into_iter().chain(li.b_hh);
                    for idx in [li.w_ih, li.w_hh].into_iter().chain(biases) {
                        uniform(&mut rng, &mut p[self.tensors[idx].range()]);
                    }
                }
                Init::Irnn => {
                    for v in &mut p[self.range(li.w_ih)] {
                        *v = 0.001 * normal(&mut rng);
                    }
                    let h = cfg.hidden;
                    let w_hh = &mut p[self.tensors[li.w_hh].range()];
                    for i in 0..h {
                        w_hh[i * h + i] = 1.0;
                    }
                }
            }
        }
        uniform(&mut rng, &mut p[self.tensors[self.head_w].range()]);
        if let Some(b) = self.head_b {
            uniform(&mut rng, &mut p[self.tensors[b].range()]);
        }
        p
    }
}

/// A standard normal sample by Box-Muller; written out so the stream depends only on the
/// ChaCha8 generator, not on a distribution crate's version.
pub fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
