//! One batch of sequences, stored time-major so that each step's rows are contiguous.

use crate::config::{Head, Input, ModelConfig, SeqShape};
use crate::error::{Error, Result};
use crate::real::Real;

/// Inputs of the steps that carry one (T_in = T, or 1 for one-to-many).
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs<F> {
    /// (T_in, B, I)
    Dense(Vec<F>),
    /// (T_in, B) class ids in 0..V
    Tokens(Vec<u32>),
}

/// Targets of the steps that carry one (T_out = T, or 1 for many-to-one).
#[derive(Clone, Debug, PartialEq)]
pub enum Targets<F> {
    /// (T_out, B) class ids in 0..O, for a softmax head
    Classes(Vec<u32>),
    /// (T_out, B, O), for linear / sigmoid heads
    Values(Vec<F>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Batch<F> {
    /// B
    pub batch: usize,
    /// T
    pub steps: usize,
    pub inputs: Inputs<F>,
    pub targets: Targets<F>,
    /// (L·dirs, B, H) initial states; zeros when absent.
    pub h0: Option<Vec<F>>,
    /// (B) the length of each sequence, 1 ≤ len_b ≤ T; all T when absent. Steps past len_b
    /// carry no loss and leave the state unchanged (SPEC §1); their input and target entries
    /// are padding, which must still be valid values (0 does).
    pub lengths: Option<Vec<u32>>,
}

impl<F: Real> Batch<F> {
    /// Checks every length and value against the model; the training paths may then index
    /// without further checks.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        const OP: &str = "batch";
        let (b, t) = (self.batch, self.steps);
        if b == 0 {
            return Err(Error::config("batch", 0, "the batch size B must be at least 1"));
        }
        if t == 0 {
            return Err(Error::config("seq_len", 0, "the sequence length T must be at least 1"));
        }
        let t_in = cfg.input_steps(t);
        let t_out = cfg.target_steps(t);
        match (&self.inputs, cfg.input) {
            (Inputs::Dense(x), Input::Dense { size }) => {
                expect_len(OP, "inputs (T_in, B, I)", x.len(), prod(&[t_in, b, size]))?;
                check_finite(OP, "inputs", x)?;
            }
            (Inputs::Tokens(x), Input::Tokens { vocab, .. }) => {
                expect_len(OP, "inputs (T_in, B)", x.len(), prod(&[t_in, b]))?;
                check_ids(OP, "input token", x, vocab)?;
            }
            (Inputs::Dense(_), Input::Tokens { .. }) => {
                return Err(Error::data(OP, "dense inputs given to a token model", "pass class ids"))
            }
            (Inputs::Tokens(_), Input::Dense { .. }) => {
                return Err(Error::data(
                    OP,
                    "token inputs given to a dense model",
                    "pass float vectors",
                ))
            }
        }
        match (&self.targets, cfg.head) {
            (Targets::Classes(y), Head::Softmax) => {
                expect_len(OP, "targets (T_out, B)", y.len(), prod(&[t_out, b]))?;
                check_ids(OP, "target class", y, cfg.output)?;
            }
            (Targets::Values(y), Head::Linear | Head::Sigmoid) => {
                expect_len(OP, "targets (T_out, B, O)", y.len(), prod(&[t_out, b, cfg.output]))?;
                check_finite(OP, "targets", y)?;
            }
            (Targets::Values(_), Head::Softmax) => {
                return Err(Error::data(
                    OP,
                    "value targets given to a softmax head",
                    "pass class ids or use --head linear",
                ))
            }
            (Targets::Classes(_), _) => {
                return Err(Error::data(
                    OP,
                    "class targets given to an MSE head",
                    "pass values or use --head softmax",
                ))
            }
        }
        if let Some(h0) = &self.h0 {
            expect_len(
                OP,
                "h0 (L·dirs, B, H)",
                h0.len(),
                prod(&[cfg.state_rows(), b, cfg.hidden]),
            )?;
            check_finite(OP, "h0", h0)?;
        }
        if let Some(lens) = &self.lengths {
            expect_len(OP, "lengths (B)", lens.len(), b)?;
            if let Some(i) = lens.iter().position(|&n| n == 0 || n as usize > t) {
                return Err(Error::data(
                    OP,
                    format!("sequence {i} has length {}, outside 1..={t}", lens[i]),
                    "every length must be at least 1 and at most the batch's T",
                ));
            }
        }
        Ok(())
    }

    /// The length of sequence `b` (T when the batch has no lengths).
    pub fn len_of(&self, b: usize) -> usize {
        self.lengths.as_ref().map_or(self.steps, |l| l[b] as usize)
    }

    /// Whether some sequence is shorter than T.
    pub fn is_ragged(&self) -> bool {
        self.lengths
            .as_ref()
            .is_some_and(|l| l.iter().any(|&n| n as usize != self.steps))
    }

    /// Number of (sequence, step) pairs that carry a target: the divisor of the mean
    /// reduction (SPEC §1). Many-to-one has one per sequence; the others one per valid step.
    pub fn target_count(&self, cfg: &ModelConfig) -> usize {
        match cfg.seq {
            SeqShape::ManyToOne => self.batch,
            _ => (0..self.batch).map(|b| self.len_of(b)).sum(),
        }
    }

    /// Sequences b0..b0+nb of the batch (a data-parallel rank's shard): every (groups, B, W)
    /// array keeps rows b0..b0+nb of each group (step, or layer for h0). The batch must
    /// have passed `validate` for `cfg`.
    pub fn rows(&self, cfg: &ModelConfig, b0: usize, nb: usize) -> Batch<F> {
        let b = self.batch;
        let take = |v: &[F], groups: usize| slice_rows(v, groups, b, b0, nb);
        let ids = |v: &[u32], groups: usize| slice_rows(v, groups, b, b0, nb);
        let (t_in, t_out) = (cfg.input_steps(self.steps), cfg.target_steps(self.steps));
        Batch {
            batch: nb,
            steps: self.steps,
            inputs: match &self.inputs {
                Inputs::Dense(x) => Inputs::Dense(take(x, t_in)),
                Inputs::Tokens(x) => Inputs::Tokens(ids(x, t_in)),
            },
            targets: match &self.targets {
                Targets::Classes(y) => Targets::Classes(ids(y, t_out)),
                Targets::Values(y) => Targets::Values(take(y, t_out)),
            },
            h0: self.h0.as_ref().map(|h| take(h, cfg.state_rows())),
            lengths: self.lengths.as_ref().map(|l| l[b0..b0 + nb].to_vec()),
        }
    }

    /// The same batch in another float type (f64 for the gradient check).
    pub fn cast<G: Real>(&self) -> Batch<G> {
        let conv = |v: &Vec<F>| v.iter().map(|x| G::from_f64(x.to_f64())).collect::<Vec<G>>();
        Batch {
            batch: self.batch,
            steps: self.steps,
            inputs: match &self.inputs {
                Inputs::Dense(x) => Inputs::Dense(conv(x)),
                Inputs::Tokens(x) => Inputs::Tokens(x.clone()),
            },
            targets: match &self.targets {
                Targets::Classes(y) => Targets::Classes(y.clone()),
                Targets::Values(y) => Targets::Values(conv(y)),
            },
            h0: self.h0.as_ref().map(conv),
            lengths: self.lengths.clone(),
        }
    }
}

/// Data-parallel training splits a global batch of `b` sequences evenly over `ranks`
/// processes.
pub fn check_shards(b: usize, ranks: usize) -> Result<()> {
    if ranks > 0 && !b.is_multiple_of(ranks) {
        return Err(Error::config(
            "batch",
            b,
            format!("the global batch must divide by the {ranks} MPI ranks; use a multiple of {ranks}"),
        ));
    }
    Ok(())
}

/// Rows b0..b0+nb of each group of a (groups, B, W) array.
fn slice_rows<T: Copy>(v: &[T], groups: usize, b: usize, b0: usize, nb: usize) -> Vec<T> {
    let w = v.len() / (groups * b).max(1);
    if w == 0 {
        return Vec::new();
    }
    v.chunks(b * w)
        .flat_map(|g| &g[b0 * w..(b0 + nb) * w])
        .copied()
        .collect()
}

/// Reorders a batch-major (B, T, W) array into time-major (T, B, W).
pub fn to_time_major<T: Copy>(x: &[T], b: usize, t: usize, w: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for s in 0..t {
        for i in 0..b {
            out.extend_from_slice(&x[(i * t + s) * w..(i * t + s + 1) * w]);
        }
    }
    out
}

/// Reorders a time-major (T, B, W) array into batch-major (B, T, W).
pub fn to_batch_major<T: Copy>(x: &[T], b: usize, t: usize, w: usize) -> Vec<T> {
    to_time_major(x, t, b, w)
}

/// Product of dimensions, saturating: for absurd B or T a plain product wraps around (in
/// release builds) and could equal a short vector's length. usize::MAX never equals a
/// Vec's length, so an overflowing shape is always reported as a mismatch.
fn prod(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}

fn expect_len(op: &'static str, what: &str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::shape(
            op,
            what,
            got,
            expected,
            "check B, T and the model's widths",
        ));
    }
    Ok(())
}

fn check_ids(op: &'static str, what: &str, ids: &[u32], n: usize) -> Result<()> {
    if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= n) {
        return Err(Error::data(
            op,
            format!("{what} id {id} at position {i} is outside 0..{n}"),
            "the data does not match the model's vocabulary / class count",
        ));
    }
    Ok(())
}

fn check_finite<F: Real>(op: &'static str, what: &str, v: &[F]) -> Result<()> {
    if let Some(i) = v.iter().position(|x| !x.to_f64().is_finite()) {
        return Err(Error::data(
            op,
            format!("{what} value at position {i} is not finite"),
            "remove NaN / infinite values",
        ));
    }
    Ok(())
}

/// A random batch that fits the model: inputs ~ U(-1, 1) or uniform class ids, targets
/// uniform class ids or ~ U(0, 1) (inside a sigmoid head's range), and h0 ~ U(-0.5, 0.5)
/// when asked. For tests and benchmarks.
pub fn random_batch(cfg: &ModelConfig, b: usize, t: usize, with_h0: bool, seed: u64) -> Batch<f32> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let t_in = cfg.input_steps(t);
    let t_out = cfg.target_steps(t);
    let inputs = match cfg.input {
        Input::Dense { size } => Inputs::Dense((0..t_in * b * size).map(|_| rng.random_range(-1.0..1.0)).collect()),
        Input::Tokens { vocab, .. } => {
            Inputs::Tokens((0..t_in * b).map(|_| rng.random_range(0..vocab as u32)).collect())
        }
    };
    let targets = match cfg.head {
        Head::Softmax => Targets::Classes((0..t_out * b).map(|_| rng.random_range(0..cfg.output as u32)).collect()),
        _ => Targets::Values(
            (0..t_out * b * cfg.output)
                .map(|_| rng.random_range(0.0..1.0))
                .collect(),
        ),
    };
    let h0 = with_h0.then(|| {
        (0..cfg.state_rows() * b * cfg.hidden)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect()
    });
    Batch {
        batch: b,
        steps: t,
        inputs,
        targets,
        h0,
        lengths: None,
    }
}
