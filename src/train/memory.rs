//! Sizes that cannot work, refused before anything is allocated.

pub use crate::config::{check_batch_and_seq_len, MAX_BATCH_OR_STEPS};
use crate::config::{Input, ModelConfig};
use crate::engine::EngineKind;
use crate::error::{Error, Result};
use crate::mem::available_memory;

/// Refuses an allocation of about `bytes` that the machine cannot hold (MemAvailable), before
/// it is attempted: the allocator would abort the process instead, mid-run and without a
/// checkpoint. Every command calls this with its estimates before allocating: model and
/// optimiser buffers, activations of a (B, T) step, batch tensors, sample text, check steps,
/// bench operands. `what` names the allocation, `hint` says which flag makes it smaller.
pub fn preflight(bytes: u128, what: &str, hint: &str) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if bytes > available as u128 {
        let gib = |x: u128| x as f64 / (1u64 << 30) as f64;
        return Err(Error::Memory {
            what: what.to_string(),
            needed_gib: gib(bytes),
            available_gib: gib(available as u128),
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Bytes of the model's host buffers: parameters, gradients and up to two optimiser slots,
/// plus the copy a checkpoint or an engine upload holds.
pub fn model_bytes(cfg: &ModelConfig) -> u128 {
    let count: u128 = cfg
        .tensors()
        .iter()
        .map(|t| t.shape.iter().map(|&d| d as u128).product::<u128>())
        .sum();
    count * 4 * 5
}

/// The model's buffers against the memory available (`preflight`).
pub fn check_model_memory(cfg: &ModelConfig) -> Result<()> {
    preflight(
        model_bytes(cfg),
        &format!("the model ({cfg}) with its gradients and optimiser state"),
        "use a smaller --hidden, --layers, --embed or vocabulary",
    )
}

/// Refuses a (B, T) whose buffers for one step, with the model's, cannot fit in the memory
/// the machine has available. On the CPU path the activations of every layer and step are
/// held on the host too (the GPU path only holds the batch there). The estimate is
/// deliberately rough (within a small factor of what the engines allocate); it only has to
/// catch sizes that cannot work at all.
pub fn check_host_memory(cfg: &ModelConfig, b: usize, t: usize, path: EngineKind) -> Result<()> {
    check_batch_and_seq_len(b, t)?;
    check_model_memory(cfg)?;
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
    let per_seq = (t as u128 + 1) * (2 * (in_w + o) + host) * 4;
    let fits = available_memory().map_or(u128::MAX, |a| a as u128 / per_seq.max(1));
    let hint = if fits == 0 {
        "even --batch 1 does not fit: use a smaller --seq-len or --hidden".to_string()
    } else {
        format!("the largest batch that fits is about --batch {fits}")
    };
    preflight(
        per_seq * b as u128 + model_bytes(cfg),
        &format!("batch = {b} (one step with --seq-len {t})"),
        &hint,
    )
}
