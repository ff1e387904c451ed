//! The scalars buffer: a few floats every step writes or reads beside the model's buffers
//! (the loss, Σ g², Adam's bias corrections, the update number), and the non-finite
//! probe's buffer the optimiser kernels write: where each value lives and how the host
//! encodes and decodes them.

/// The scalars buffer: [loss, Σ g², 1 - β1^k, 1 - β2^k, update number (3 floats), unused...].
pub const LOSS: usize = 0;
pub const NORM_SQ: usize = 1;
/// Adam's bias corrections of the current update, written before each training submission.
pub const BIAS_CORR: usize = 2;
/// The current update number (`step_parts`), written before each training submission for
/// the probe's records.
pub const STEP: usize = 4;
/// Floats from LOSS a probe record copies: loss, Σ g², bias corrections, update number
/// (`RECORD` in the optimiser shaders).
pub const PROBE_RECORD: usize = 7;
/// floats from LOSS read back with the loss: the loss and Σ g²
pub const READ_WITH_LOSS: usize = 2;
/// floats in the scalars buffer
pub const SCALARS: usize = 64;

/// The probe buffer: two sticky flags (non-finite weights, non-finite optimiser state; the
/// bits of 1.0 once set, until the host clears them), then the record of each flag's first
/// bad update, PROBE_RECORD words each. Read with the loss.
pub const PROBE_FIRST: usize = 2;
/// words in the probe buffer
pub const PROBE_WORDS: usize = PROBE_FIRST + 2 * PROBE_RECORD;

/// A step number as the 3 floats of 24 bits each that the probe copies (an f32 holds 24 bits
/// exactly), least significant first.
pub fn step_parts(k: u64) -> [f32; 3] {
    [0, 24, 48].map(|s| ((k >> s) & 0xff_ffff) as f32)
}

/// The first non-finite step the probe recorded, from the probe buffer read as floats,
/// named as the CPU path names it: the loss, the gradient, the optimiser state, the weights,
/// in the order it checks them at that step.
pub fn probed(v: &[f32]) -> Option<(&'static str, u64)> {
    let record = |k: usize| &v[PROBE_FIRST + PROBE_RECORD * k..][..PROBE_RECORD];
    let step = |r: &[f32]| {
        let parts = &r[STEP - LOSS..][..3];
        (0..3).map(|i| (parts[i] as u64) << (24 * i)).sum::<u64>()
    };
    let bad = |k: usize| (v[k] != 0.0).then(|| (record(k), step(record(k))));
    let (r, at, what) = match (bad(0), bad(1)) {
        (Some((rw, w)), Some((_, s))) if w < s => (rw, w, "weights"),
        (_, Some((rs, s))) => (rs, s, "optimiser state"),
        (Some((rw, w)), None) => (rw, w, "weights"),
        (None, None) => return None,
    };
    let what = if !r[LOSS].is_finite() {
        "loss"
    } else if !r[NORM_SQ].is_finite() {
        "gradient"
    } else {
        what
    };
    Some((what, at))
}
