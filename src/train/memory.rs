//! Sizes that cannot work, refused before anything is allocated.

use crate::config::{Input, ModelConfig};
use crate::engine::EngineKind;
use crate::error::{Error, Result};
use crate::mem::available_memory;

/// Largest batch size B and sequence length T the flags may ask for; `check_host_memory`
/// then bounds their product with the model's widths.
pub const MAX_BATCH_OR_STEPS: usize = 1 << 24;

/// The range of --batch and --seq-len, for every command that takes them.
pub fn check_batch_and_seq_len(b: usize, t: usize) -> Result<()> {
    for (flag, v) in [("batch", b), ("seq-len", t)] {
        if v == 0 || v > MAX_BATCH_OR_STEPS {
            return Err(Error::config(flag, v, format!("must be in 1..={MAX_BATCH_OR_STEPS}")));
        }
    }
    Ok(())
}

/// Refuses a (B, T) whose buffers for one step cannot fit in the memory the machine has
/// available, instead of letting the allocation abort the process mid-run. On the CPU path
/// the activations of every layer and step are held on the host too (the GPU path only holds
/// the batch there). The estimate is deliberately rough (within a small factor of what the
/// engines allocate); it only has to catch sizes that cannot work at all.
pub fn check_host_memory(cfg: &ModelConfig, b: usize, t: usize, path: EngineKind) -> Result<()> {
    check_batch_and_seq_len(b, t)?;
    let (h, l, o) = (cfg.hidden as u128, cfg.layers as u128, cfg.output as u128);
    // token ids (and their embeddings) or dense vectors per step
    let in_w = match cfg.input {
        Input::Dense { size } => size as u128,
        Input::Tokens { embed, .. } => 1 + embed.unwrap_or(0) as u128,
    };
    // per sequence: the batch (inputs, targets, a time-major copy of each) and, on the CPU
    // path, the states, dh and dz of every layer plus logits, outputs and their gradient
    let host = match path {
        EngineKind::Cpu => 3 * h * l + 3 * o,
        EngineKind::Gpu => 0,
    };
    let per_seq_floats = (t as u128 + 1) * (2 * (in_w + o) + host);
    let needed = per_seq_floats * 4 * b as u128;
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if needed > available as u128 {
        let fits = available as u128 / (per_seq_floats * 4).max(1);
        let gib = |x: u128| x as f64 / (1u64 << 30) as f64;
        let hint = if fits == 0 {
            "even --batch 1 does not fit: use a smaller --seq-len or --hidden".to_string()
        } else {
            format!("the largest batch that fits is about --batch {fits}")
        };
        return Err(Error::config(
            "batch",
            b,
            format!(
                "with --seq-len {t} one step needs about {:.1} GiB of host memory but {:.1} GiB are available; {hint}",
                gib(needed),
                gib(available as u128)
            ),
        ));
    }
    Ok(())
}
