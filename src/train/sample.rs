//! Text generation from a character-level model.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::memory::preflight;
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Head, ModelConfig};
use crate::data::Vocab;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Whether text can be generated from the model left to right: a reverse direction would
/// need the characters not drawn yet.
pub fn can_sample(cfg: &ModelConfig) -> bool {
    !cfg.bidirectional
}

/// Refuses models that cannot generate text: not a character-level language model, or
/// bidirectional (`can_sample`).
pub fn check_sampleable(cfg: &ModelConfig) -> Result<()> {
    if !cfg.is_tokens() || cfg.head != Head::Softmax || cfg.vocab() != Some(cfg.output) {
        return Err(Error::config(
            "checkpoint",
            cfg,
            "sampling needs a character-level language model",
        ));
    }
    if !can_sample(cfg) {
        return Err(Error::config(
            "checkpoint",
            cfg,
            "a bidirectional model reads each window from both ends, so it cannot generate text one character at a time; sample a unidirectional model",
        ));
    }
    Ok(())
}

/// `sample_stream` collected into a string, for samples printed whole (`train
/// --sample-every`); its size is checked against the memory available first.
pub fn sample_text(
    engine: &mut dyn Engine,
    vocab: &Vocab,
    prime: &str,
    len: usize,
    temperature: f64,
    seed: u64,
) -> Result<String> {
    // a character is at most 4 bytes of UTF-8
    preflight(
        len as u128 * 4,
        &format!("a sample of {len} characters"),
        "use a smaller --sample-len",
    )?;
    let mut text = String::new();
    sample_stream(engine, vocab, prime, len, temperature, seed, &mut |c| {
        text.push_str(c);
        Ok(())
    })?;
    Ok(text)
}

/// Generates `len` characters after `prime` (empty: start after a newline) by sampling the
/// softmax at `temperature`, handing each to `emit` as it is drawn: memory does not grow
/// with `len`.
pub fn sample_stream(
    engine: &mut dyn Engine,
    vocab: &Vocab,
    prime: &str,
    len: usize,
    temperature: f64,
    seed: u64,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::config("temperature", temperature, "must be a finite number > 0"));
    }
    let cfg = *engine.config();
    check_sampleable(&cfg)?;
    let mut ids = vocab.encode(prime, "--prime")?;
    if ids.is_empty() {
        ids = vocab.encode("\n", "--prime").unwrap_or_else(|_| vec![0]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut h0 = None;
    let mut feed = ids;
    for _ in 0..len {
        let t = feed.len();
        let batch = Batch {
            batch: 1,
            steps: t,
            inputs: Inputs::Tokens(feed.clone()),
            targets: Targets::Classes(vec![0; t]),
            h0,
            lengths: None,
        };
        let o = engine.forward(&batch)?;
        let last = &o.out[(t - 1) * cfg.output..t * cfg.output]; // (V)
        let w: Vec<f64> = last
            .iter()
            .map(|&p| (p.max(0.0) as f64).powf(1.0 / temperature))
            .collect();
        let total: f64 = w.iter().sum();
        let mut r = rng.random_range(0.0..1.0) * total;
        let mut next = w.len() - 1;
        for (i, &wi) in w.iter().enumerate() {
            if r < wi {
                next = i;
                break;
            }
            r -= wi;
        }
        emit(&vocab.decode(&[next as u32]))?;
        feed = vec![next as u32];
        h0 = Some(o.final_state);
    }
    Ok(())
}
