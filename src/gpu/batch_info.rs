//! The per-call words each engine call uploads with its batch, in one small u32 buffer
//! (`info`) that the step, head and layer-output kernels read: what changes from batch to
//! batch while the recorded programs stay the same (the loss scale of a ragged batch, each
//! update's dropout key, the sequence lengths). shaders/common/batch_info.wgsl names the
//! same slots.

use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::dropout::MaskKey;

/// The batch's loss scale (f32 bits): 1 / its valid targets for the mean, 1 for the sum.
pub const LOSS_SCALE: usize = 0;
/// The update's dropout key (`MaskKey`): base, threshold, scale (f32 bits).
pub const DROPOUT: usize = 1;
/// The length of each sequence of the whole batch (B words).
pub const LENGTHS: usize = 4;

/// Words of the info buffer of a batch of `b` sequences.
pub fn len(b: usize) -> usize {
    LENGTHS + b
}

/// The words of one call on `batch` (validated); `updates` is the number of optimiser
/// updates done before it, which keys the dropout masks (SPEC §1).
pub fn words(cfg: &ModelConfig, batch: &Batch<f32>, updates: u64) -> Vec<u32> {
    let key = MaskKey::new(&cfg.dropout, updates);
    let scale = cfg.loss_scale_n(batch.target_count(cfg)) as f32;
    let mut w = vec![scale.to_bits(), key.base, key.threshold, key.scale.to_bits()];
    w.extend((0..batch.batch).map(|b| batch.len_of(b) as u32));
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shader_names_the_same_slots() {
        let src = include_str!("../../shaders/common/batch_info.wgsl");
        for (name, slot) in [
            ("INFO_LOSS_SCALE", LOSS_SCALE),
            ("INFO_DROPOUT", DROPOUT),
            ("INFO_LENGTHS", LENGTHS),
        ] {
            assert!(
                src.contains(&format!("const {name}: u32 = {slot}u;")),
                "{name} is not {slot}"
            );
        }
    }
}
