//! Model configuration (SPEC §1, §3) and its validation.
//!
//! Dimension letters: B batch, T time steps, I input width, H hidden width, O output width
//! (V when outputs or inputs are classes), L layers, E embedding width.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result};

/// What the network reads at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// A dense vector of width I per step.
    Dense { size: usize },
    /// A class id in 0..V per step, one-hot semantics; optionally through an embedding table
    /// of width E first.
    Tokens { vocab: usize, embed: Option<usize> },
}

/// What a tensor of the model is (layer index where it has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Embed,
    /// (layer, direction): direction 1 is the reverse recurrence of a bidirectional layer
    WeightIh(usize, usize),
    WeightHh(usize, usize),
    BiasIh(usize, usize),
    BiasHh(usize, usize),
    HeadWeight,
    HeadBias,
}

/// One tensor of the model: its role, PyTorch name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDef {
    pub role: Role,
    pub name: String,
    pub shape: Vec<usize>,
}

/// A fieldless enum named by fixed strings: `as_str`, `ALL`, Display, FromStr (for code and
/// tests), serde (checkpoints) and clap's `ValueEnum` (flags: clap lists the allowed values in
/// `--help` and in the error for a bad one). `$flag` names the value in errors. The first
/// variant is the `Default`.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident ($flag:literal) { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { #[default] $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($s),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $s),+ } }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                match s { $($s => Ok($name::$variant),)+
                    _ => Err($crate::error::Error::config($flag, s, format!("allowed: {}", Self::ALL.join(" | ")))) }
            }
        }
        impl ::clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] { &[$($name::$variant),+] }
            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                Some(::clap::builder::PossibleValue::new(self.as_str()))
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// The cell non-linearity f.
    Activation("activation") { Tanh => "tanh", Sigmoid => "sigmoid", Relu => "relu" }
);
str_enum!(
    /// Output layer and the loss paired with it.
    Head("head") {
        /// softmax + cross-entropy against class ids
        Softmax => "softmax",
        /// identity + MSE
        Linear => "linear",
        /// sigmoid + MSE
        Sigmoid => "sigmoid",
    }
);
str_enum!(
    /// How the per-(sequence, step) losses are combined.
    Reduction("reduction") { Mean => "mean", Sum => "sum" }
);
str_enum!(
    /// Which steps carry inputs and targets.
    SeqShape("seq") {
        ManyToMany => "many-to-many",
        ManyToOne => "many-to-one",
        OneToMany => "one-to-many",
    }
);
str_enum!(
    /// Parameter initialisation (SPEC §3).
    Init("init") { Default => "default", Irnn => "irnn" }
);

/// Dropout on the outputs of every layer but the last (`nn.RNN(dropout=p)`), in training
/// only. The masks are a function of (seed, update count, layer, t, b, unit) (SPEC §1), so
/// both paths draw the same ones and a resumed run draws what the uninterrupted one would.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Dropout {
    /// drop probability P in [0, 1)
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    pub fn is_active(&self) -> bool {
        self.p > 0.0
    }
}

// Two configurations are equal when they compute the same thing: compare P by its bits, so
// equality stays an equivalence relation (no NaN can pass `validate`).
impl PartialEq for Dropout {
    fn eq(&self, o: &Self) -> bool {
        self.p.to_bits() == o.p.to_bits() && self.seed == o.seed
    }
}
impl Eq for Dropout {}

fn yes() -> bool {
    true
}

/// The whole model: everything needed to size and interpret the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub input: Input,
    /// H
    pub hidden: usize,
    /// L
    pub layers: usize,
    pub activation: Activation,
    /// O (V for a softmax head)
    pub output: usize,
    pub head: Head,
    pub reduction: Reduction,
    pub seq: SeqShape,
    pub init: Init,
    /// `rnn.bias_ih_l*` / `rnn.bias_hh_l*` exist (`nn.RNN(bias=...)`)
    #[serde(default = "yes")]
    pub bias: bool,
    /// `head.bias` exists (`nn.Linear(bias=...)`)
    #[serde(default = "yes")]
    pub head_bias: bool,
    /// every layer also runs a reverse recurrence; layer outputs are [h_fwd; h_rev] (2H)
    #[serde(default)]
    pub bidirectional: bool,
    #[serde(default)]
    pub dropout: Dropout,
}

/// Most layers L a model may have.
pub const MAX_LAYERS: usize = 64;
/// Anything larger is almost certainly a typo and would only fail later in an allocation.
const MAX_DIM: usize = 1 << 24;
/// Each width is bounded by MAX_DIM, but their products are not (H² alone can reach 2^48):
/// the parameter count is bounded too, so an absurd model is refused here instead of aborting
/// the process when the parameters are allocated. 2^31 f32 weights are 8 GiB.
const MAX_PARAMS: usize = 1 << 31;

impl ModelConfig {
    /// A character-level language model: tokens in, softmax over the same vocabulary out.
    pub fn char_lm(vocab: usize, hidden: usize, layers: usize) -> Self {
        ModelConfig {
            input: Input::Tokens { vocab, embed: None },
            hidden,
            layers,
            activation: Activation::Tanh,
            output: vocab,
            head: Head::Softmax,
            reduction: Reduction::Mean,
            seq: SeqShape::ManyToMany,
            init: Init::Default,
            bias: true,
            head_bias: true,
            bidirectional: false,
            dropout: Dropout::default(),
        }
    }

    /// Refuses the nn.RNN-parity options (#11) until both engines compute them.
    pub fn check_implemented(&self) -> Result<()> {
        let todo = [
            ("bias", !self.bias),
            ("head_bias", !self.head_bias),
            ("bidirectional", self.bidirectional),
            ("dropout", self.dropout.is_active()),
        ];
        match todo.iter().find(|(_, on)| *on) {
            Some((field, _)) => Err(Error::config(field, "set", "not implemented yet")),
            None => Ok(()),
        }
    }

    /// Refuses to carry the final state into the next window (stateful training, SPEC §1):
    /// a reverse recurrence's initial state would have to come from the future.
    pub fn check_carry(&self) -> Result<()> {
        if self.bidirectional {
            return Err(Error::config(
                "stateful",
                "bidirectional",
                "a bidirectional model cannot carry its state into the next window; drop --stateful or --bidirectional",
            ));
        }
        Ok(())
    }

    /// Directions per layer: 1, or 2 when bidirectional.
    pub fn dirs(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Width of a layer's output, the input of the layer above and of the head: H·dirs.
    pub fn out_width(&self) -> usize {
        self.hidden * self.dirs()
    }

    /// Rows of a state tensor (h0, final state, dh0): L·dirs, PyTorch's order (l, direction).
    pub fn state_rows(&self) -> usize {
        self.layers * self.dirs()
    }

    /// Checks every field; the error names the field and the allowed values.
    pub fn validate(&self) -> Result<()> {
        let dim = |field: &'static str, v: usize, what: &str| -> Result<()> {
            if v == 0 || v > MAX_DIM {
                Err(Error::config(field, v, format!("{what} must be in 1..={MAX_DIM}")))
            } else {
                Ok(())
            }
        };
        match self.input {
            Input::Dense { size } => dim("input_size", size, "the input width I")?,
            Input::Tokens { vocab, embed } => {
                dim("vocab", vocab, "the vocabulary size V")?;
                if let Some(e) = embed {
                    dim("embed", e, "the embedding width E")?;
                }
            }
        }
        dim("hidden", self.hidden, "the hidden width H")?;
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(Error::config(
                "layers",
                self.layers,
                format!("the layer count L must be in 1..={MAX_LAYERS}"),
            ));
        }
        dim("output", self.output, "the output width O")?;
        let p = self.dropout.p;
        if !(0.0..1.0).contains(&p) {
            return Err(Error::config(
                "dropout",
                p,
                "the drop probability P must be in [0, 1) (0.2 drops a fifth of the units)",
            ));
        }
        if self.head == Head::Softmax && self.output < 2 {
            return Err(Error::config(
                "output",
                self.output,
                "a softmax head needs at least 2 classes; use --head linear or sigmoid for one output",
            ));
        }
        // No overflow: every width is at most 2^24 and L at most 64, so the count is < 2^56.
        let count: usize = self.tensors().iter().map(|t| t.shape.iter().product::<usize>()).sum();
        if count > MAX_PARAMS {
            return Err(Error::config(
                "parameters",
                count,
                format!("a model has at most {MAX_PARAMS} parameters; lower hidden, layers, vocab, embed or output"),
            ));
        }
        Ok(())
    }

    /// Width of layer l's input: I (dense), E (embedded tokens), V (plain tokens: the columns
    /// of W_ih are gathered), H·dirs above layer 0.
    pub fn in_width(&self, l: usize) -> usize {
        if l > 0 {
            return self.out_width();
        }
        match self.input {
            Input::Dense { size } => size,
            Input::Tokens { embed: Some(e), .. } => e,
            Input::Tokens { vocab, embed: None } => vocab,
        }
    }

    pub fn is_tokens(&self) -> bool {
        matches!(self.input, Input::Tokens { .. })
    }

    /// The model's tensors in storage order, with PyTorch's `state_dict` names and shapes of
    /// `nn.Embedding` + `nn.RNN` + `nn.Linear` (SPEC §3). `params::ParamLayout` places them in
    /// the flat buffer.
    pub fn tensors(&self) -> Vec<TensorDef> {
        let h = self.hidden;
        let def = |role, name: String, shape: Vec<usize>| TensorDef { role, name, shape };
        let mut out = Vec::with_capacity(2 + 8 * self.layers + 1);
        if let (Some(v), Some(e)) = (self.vocab(), self.embed()) {
            out.push(def(Role::Embed, "embed.weight".into(), vec![v, e]));
        }
        for l in 0..self.layers {
            for d in 0..self.dirs() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let iw = self.in_width(l);
                out.push(def(Role::WeightIh(l, d), format!("rnn.weight_ih_l{l}{sfx}"), vec![h, iw]));
                out.push(def(Role::WeightHh(l, d), format!("rnn.weight_hh_l{l}{sfx}"), vec![h, h]));
                if self.bias {
                    out.push(def(Role::BiasIh(l, d), format!("rnn.bias_ih_l{l}{sfx}"), vec![h]));
                    out.push(def(Role::BiasHh(l, d), format!("rnn.bias_hh_l{l}{sfx}"), vec![h]));
                }
            }
        }
        let ow = self.out_width();
        out.push(def(Role::HeadWeight, "head.weight".into(), vec![self.output, ow]));
        if self.head_bias {
            out.push(def(Role::HeadBias, "head.bias".into(), vec![self.output]));
        }
        out
    }

    /// V for token inputs.
    pub fn vocab(&self) -> Option<usize> {
        match self.input {
            Input::Tokens { vocab, .. } => Some(vocab),
            Input::Dense { .. } => None,
        }
    }

    pub fn embed(&self) -> Option<usize> {
        match self.input {
            Input::Tokens { embed, .. } => embed,
            Input::Dense { .. } => None,
        }
    }

    /// Number of steps that carry an input: T, or 1 for one-to-many.
    pub fn input_steps(&self, t: usize) -> usize {
        match self.seq {
            SeqShape::OneToMany => 1,
            _ => t,
        }
    }

    /// Number of steps that carry a target: T, or 1 (the last step) for many-to-one.
    pub fn target_steps(&self, t: usize) -> usize {
        match self.seq {
            SeqShape::ManyToOne => 1,
            _ => t,
        }
    }

    /// Loss of the whole batch = sum over targets × this factor (SPEC §1 reduction), for
    /// sequences of equal length T.
    pub fn loss_scale(&self, b: usize, t: usize) -> f64 {
        self.loss_scale_n(b * self.target_steps(t))
    }

    /// `loss_scale` for a batch with `targets` valid (sequence, step) targets in all
    /// (`Batch::target_count`: ragged batches have fewer than B·T).
    pub fn loss_scale_n(&self, targets: usize) -> f64 {
        match self.reduction {
            Reduction::Mean => 1.0 / targets as f64,
            Reduction::Sum => 1.0,
        }
    }
}

impl fmt::Display for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.input {
            Input::Dense { size } => write!(f, "dense I={size}")?,
            Input::Tokens { vocab, embed: None } => write!(f, "tokens V={vocab}")?,
            Input::Tokens { vocab, embed: Some(e) } => write!(f, "tokens V={vocab} E={e}")?,
        }
        let bi = if self.bidirectional { "bidirectional " } else { "" };
        write!(f, " -> {bi}{} rnn H={} L={}", self.activation, self.hidden, self.layers)?;
        if !self.bias {
            f.write_str(" no-bias")?;
        }
        if self.dropout.is_active() {
            write!(f, " dropout={}", self.dropout.p)?;
        }
        write!(f, " -> {} head O={}", self.head, self.output)?;
        if !self.head_bias {
            f.write_str(" no-bias")?;
        }
        write!(f, " ({}, {})", self.reduction, self.seq)
    }
}

/// Largest batch size B and sequence length T the flags may ask for; `train::check_host_memory`
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
