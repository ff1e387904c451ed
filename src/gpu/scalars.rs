//! The scalars buffer: a few floats every step writes or reads beside the model's buffers
//! (the loss, Σ g², Adam's bias corrections, the non-finite probe), where each lives and
//! how the host encodes and decodes them.

use super::kernels::{Probe, PROBE_RECORD};

/// The scalars buffer: [loss, Σ g², 1 - β1^k, 1 - β2^k, unused...].
pub const LOSS: usize = 0;
pub const NORM_SQ: usize = 1;
/// Adam's bias corrections of the current update, written before each training submission.
pub const BIAS_CORR: usize = 2;
/// The non-finite probe's state (`kernels::Probe`): the step number written before each
/// training submission, two sticky counts (weights, optimiser state) and the record of each
/// one's first bad step (loss, Σ g², bias corrections, step). Read with the loss.
pub const PROBE: Probe = Probe {
    record: LOSS,
    step: 4,
    counts: 7,
    first: 9,
};
/// floats from LOSS read back with the loss: up to the probe's last record
pub const READ_WITH_LOSS: usize = 9 + 2 * PROBE_RECORD;
/// floats in the scalars buffer
pub const SCALARS: usize = 64;

/// A step number as the 3 floats of 24 bits each that the probe copies (an f32 holds 24 bits
/// exactly), least significant first.
pub fn step_parts(k: u64) -> [f32; 3] {
    [0, 24, 48].map(|s| ((k >> s) & 0xff_ffff) as f32)
}

/// The first non-finite step the probe recorded, from the floats read at LOSS, named as the
/// CPU path names it: the loss, the gradient, the optimiser state, the weights, in the
/// order it checks them at that step.
pub fn probed(v: &[f32]) -> Option<(&'static str, u64)> {
    let record = |k: usize| &v[PROBE.first - LOSS + PROBE_RECORD * k..][..PROBE_RECORD];
    let step = |r: &[f32]| {
        let parts = &r[PROBE.step - PROBE.record..][..3];
        (0..3).map(|i| (parts[i] as u64) << (24 * i)).sum::<u64>()
    };
    let bad = |k: usize| (v[PROBE.counts - LOSS + k] > 0.0).then(|| (record(k), step(record(k))));
    let (r, at, what) = match (bad(0), bad(1)) {
        (Some((rw, w)), Some((_, s))) if w < s => (rw, w, "weights"),
        (_, Some((rs, s))) => (rs, s, "optimiser state"),
        (Some((rw, w)), None) => (rw, w, "weights"),
        (None, None) => return None,
    };
    let what = if !r[LOSS - PROBE.record].is_finite() {
        "loss"
    } else if !r[NORM_SQ - PROBE.record].is_finite() {
        "gradient"
    } else {
        what
    };
    Some((what, at))
}
