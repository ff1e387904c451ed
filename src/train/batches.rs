//! The training batches of a run, and where they stand for a checkpoint.
//!
//! Random batches come from one ChaCha8 generator whose word position is stored in the
//! checkpoint; a stateful run over text serves B streams of consecutive windows instead
//! (truncated BPTT), and the checkpoint stores the stream position.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Resume, TrainOptions};
use crate::batch::Batch;
use crate::data::{Dataset, Streams, TextData};

/// How a batch's initial state is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// `batch.h0`: zeros when None (first window of a pass, stateless batches), or the
    /// checkpoint's carried state for the first window after a resume
    Given,
    /// the final state of the previous step, kept by the engine (`train_step_carried`)
    Carried,
}

pub(super) struct Batches<'a> {
    data: &'a Dataset,
    b: usize,
    t: usize,
    rng: ChaCha8Rng,
    streams: Option<(&'a TextData, Streams)>,
    /// the checkpoint's carried state, for the first window after a resume
    resumed: Option<Option<Vec<f32>>>,
}

impl<'a> Batches<'a> {
    pub fn new(data: &'a Dataset, opts: &TrainOptions, resume: Resume) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_word_pos(resume.rng_word_pos);
        let streams = match data {
            Dataset::Text(d) if opts.stateful => Some((d, Streams { pos: resume.stream_pos })),
            _ => None,
        };
        Batches {
            data,
            b: opts.batch,
            t: opts.seq_len,
            rng,
            streams,
            resumed: Some(resume.carried),
        }
    }

    /// Whether windows carry the hidden state across steps.
    pub fn stateful(&self) -> bool {
        self.streams.is_some()
    }

    pub fn next(&mut self) -> (Batch<f32>, Start) {
        let (b, t) = (self.b, self.t);
        let Some((text, streams)) = &mut self.streams else {
            return (self.data.random_batch(&mut self.rng, b, t), Start::Given);
        };
        let (mut batch, continues) = streams.next(text, b, t);
        // the engine holds no state of this run's before its first step
        match self.resumed.take() {
            Some(carried) if continues => batch.h0 = carried,
            _ if continues => return (batch, Start::Carried),
            _ => {}
        }
        (batch, Start::Given)
    }

    /// The sampler's word position and the stream position, for a checkpoint.
    pub fn position(&self) -> (u128, usize) {
        (self.rng.get_word_pos(), self.streams.as_ref().map_or(0, |s| s.1.pos))
    }
}
