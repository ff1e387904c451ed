//! Exact resume: a checkpoint holds the parameters, the optimiser state and step, the
//! batch sampler's position and (stateful runs) the stream position and carried state.
//! Validation and sampling draw from generators of their own, so they never move the sampler.

use std::path::PathBuf;

use super::batches::Batches;
use super::TrainOptions;
use crate::checkpoint::{Checkpoint, TrainMeta};
use crate::data::Dataset;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Where a checkpoint left off.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    pub step: u64,
    pub rng_word_pos: u128,
    pub stream_pos: usize,
    pub carried: Option<Vec<f32>>,
}

impl Resume {
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        let tm = ck.train.as_ref().ok_or_else(|| {
            Error::config(
                "resume",
                "checkpoint",
                "the checkpoint holds no training state (was it written by `train`?)",
            )
        })?;
        let rng_word_pos = tm.rng_word_pos.parse().map_err(|_| {
            Error::config(
                "resume",
                &tm.rng_word_pos,
                "the stored sampler position is not a number",
            )
        })?;
        Ok(Resume {
            step: ck.step,
            rng_word_pos,
            stream_pos: tm.stream_pos,
            carried: ck.carried.clone(),
        })
    }
}

/// Writes `opts.out` (if any) after `step`; returns where it went. The carried state is read
/// from the engine here only: a GPU engine keeps it on the device between steps.
pub(super) fn save(
    engine: &mut dyn Engine,
    data: &Dataset,
    opts: &TrainOptions,
    batches: &Batches,
    step: u64,
) -> Result<Option<(PathBuf, u64)>> {
    let Some(path) = &opts.out else { return Ok(None) };
    let params = engine.params()?;
    let optim_state = engine.optim_state()?;
    // never replace a good checkpoint with broken weights or optimiser state (the loader
    // refuses them too)
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    for (what, ok) in [
        ("weights", finite(&params)),
        ("optimiser state", optim_state.slots.iter().all(|s| finite(s))),
    ] {
        if !ok {
            return Err(Error::NonFinite {
                what: what.into(),
                step,
            });
        }
    }
    let (rng_word_pos, stream_pos) = batches.position();
    let ck = Checkpoint {
        config: *engine.config(),
        optim: *engine.optim_config(),
        params,
        optim_state,
        vocab: data.vocab().cloned(),
        step,
        train: Some(TrainMeta {
            seed: opts.seed,
            batch: opts.batch,
            seq_len: opts.seq_len,
            val_fraction: opts.val_fraction,
            stateful: batches.stateful(),
            data: opts.data.clone(),
            rng_word_pos: rng_word_pos.to_string(),
            stream_pos,
            data_fingerprint: opts.data_fingerprint.clone(),
        }),
        carried: if batches.stateful() {
            Some(engine.last_state()?)
        } else {
            None
        },
    };
    ck.save(path)?;
    Ok(Some((path.clone(), step)))
}
