//! Text generation from a language model (characters, words or token ids).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::evaluate::argmax;
use super::memory::preflight;
use crate::batch::{Batch, Inputs, Targets};
use crate::config::{Head, ModelConfig, SeqShape};
use crate::data::tokens::Joiner;
use crate::data::Vocab;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// How each next token is drawn from the model's softmax p.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the most likely token); otherwise p_i^(1/temperature), renormalised
    pub temperature: f64,
    /// keep only the k most likely tokens (0: all)
    pub top_k: usize,
    pub seed: u64,
}

impl Sampling {
    pub fn new(temperature: f64, seed: u64) -> Self {
        Sampling {
            temperature,
            top_k: 0,
            seed,
        }
    }

    /// The id drawn from `p` (V) with `u` ~ U(0, 1). The weights are computed in log space
    /// relative to the largest probability, exp((ln p_i − ln p_max) / temperature), so the
    /// most likely token has weight 1 at any temperature: a tiny temperature tends to the
    /// argmax and never underflows every weight to 0.
    pub fn pick(&self, p: &[f32], u: f64) -> usize {
        if self.temperature == 0.0 {
            return argmax(p);
        }
        let mut order: Vec<usize> = (0..p.len()).collect();
        if self.top_k > 0 && self.top_k < p.len() {
            // stable: equal probabilities keep id order
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            order.truncate(self.top_k);
        }
        let top = order.iter().map(|&i| p[i]).fold(f32::NEG_INFINITY, f32::max) as f64;
        let w: Vec<f64> = order
            .iter()
            .map(|&i| (((p[i].max(0.0) as f64).ln() - top.ln()) / self.temperature).exp())
            .collect();
        let mut r = u * w.iter().sum::<f64>();
        for (&i, &wi) in order.iter().zip(&w) {
            if r < wi {
                return i;
            }
            r -= wi;
        }
        // rounding left r at the very end: the last token with any weight
        order
            .iter()
            .zip(&w)
            .rev()
            .find(|(_, &wi)| wi > 0.0)
            .map_or(argmax(p), |(&i, _)| i)
    }

    fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::config(
                "temperature",
                self.temperature,
                "must be a finite number >= 0 (0: always the most likely token)",
            ));
        }
        Ok(())
    }
}

/// Whether text can be generated from the model left to right: a reverse direction would
/// need the characters not drawn yet.
pub fn can_sample(cfg: &ModelConfig) -> bool {
    !cfg.bidirectional
}

/// Refuses models that cannot generate text: not a character-level language model, or
/// bidirectional (`can_sample`).
pub fn check_sampleable(cfg: &ModelConfig) -> Result<()> {
    let lm = cfg.is_tokens() && cfg.head == Head::Softmax && cfg.seq == SeqShape::ManyToMany;
    if !lm || cfg.vocab() != Some(cfg.output) {
        return Err(Error::config(
            "checkpoint",
            cfg,
            "sampling needs a language model (tokens in, a softmax over the same vocabulary out, many-to-many)",
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
pub fn sample_text(engine: &mut dyn Engine, vocab: &Vocab, prime: &str, len: usize, how: Sampling) -> Result<String> {
    // a character is at most 4 bytes of UTF-8; a word or id is bounded by the vocabulary's
    // longest, taken as 64 bytes
    let per = if vocab.kind() == crate::data::TokenKind::Char {
        4
    } else {
        64
    };
    preflight(
        len as u128 * per,
        &format!("a sample of {len} tokens"),
        "use a smaller --sample-len",
    )?;
    let mut text = String::new();
    sample_stream(engine, vocab, prime, len, how, &mut |c| {
        text.push_str(c);
        Ok(())
    })?;
    Ok(text)
}

/// Generates `len` tokens after `prime` (empty: start after a line break), handing each to
/// `emit` as it is drawn, with the separator the vocabulary's joining rule puts before it:
/// memory does not grow with `len`.
pub fn sample_stream(
    engine: &mut dyn Engine,
    vocab: &Vocab,
    prime: &str,
    len: usize,
    how: Sampling,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    how.check()?;
    let cfg = *engine.config();
    check_sampleable(&cfg)?;
    if vocab.len() != cfg.output {
        return Err(Error::config(
            "checkpoint",
            cfg,
            "its vocabulary does not match the model's output width",
        ));
    }
    let mut ids = vocab.encode(prime, "--prime")?;
    if ids.is_empty() {
        ids = vocab
            .encode("\n", "--prime")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or(vec![0]);
    }
    let mut joiner = Joiner::new(vocab, Some(prime));
    let mut rng = ChaCha8Rng::seed_from_u64(how.seed);
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
        let next = how.pick(last, rng.random_range(0.0..1.0)) as u32;
        emit(&joiner.push(next))?;
        feed = vec![next];
        h0 = Some(o.final_state);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_tiny_temperatures() {
        let p = [0.1f32, 0.6, 0.3, 0.0];
        let greedy = Sampling::new(0.0, 1);
        assert_eq!(greedy.pick(&p, 0.99), 1);
        for t in [1e-3, 1e-30, 1e-300, f64::MIN_POSITIVE] {
            for u in [0.0, 0.5, 0.999_999] {
                assert_eq!(Sampling::new(t, 1).pick(&p, u), 1, "temperature {t}, u {u}");
            }
        }
        // probabilities so small that p^(1/T) underflows for every token
        let tiny = [1e-30f32, 3e-30, 2e-30];
        assert_eq!(Sampling::new(1e-3, 1).pick(&tiny, 0.7), 1);
        let top2 = Sampling {
            top_k: 2,
            ..Sampling::new(1.0, 1)
        };
        for i in 0..100 {
            assert!([1, 2].contains(&top2.pick(&p, i as f64 / 100.0)));
        }
        // temperature 1 draws in proportion to p
        let one = Sampling::new(1.0, 1);
        assert_eq!(one.pick(&p, 0.05), 0);
        assert_eq!(one.pick(&p, 0.5), 1);
        assert_eq!(one.pick(&p, 0.95), 2);
        assert!(Sampling::new(-1.0, 1).check().is_err());
        assert!(Sampling::new(f64::NAN, 1).check().is_err());
    }
}
