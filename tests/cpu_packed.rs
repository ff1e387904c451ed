//! The packed recurrent product (cpu::packed) against the reference path (`gemm` crate per
//! step, then the activation), on awkward shapes, for every kernel this CPU runs and always
//! for the portable one, so machines without AVX-512 or AVX2 are covered here too.

use wgrnn::cpu::backward::{backward_into_with, Scratch};
use wgrnn::cpu::forward::{forward_into_with, Activations};
use wgrnn::cpu::packed::{step, Epilogue, Side};
use wgrnn::cpu::{Kernel, PackedW};
use wgrnn::dropout::MaskKey;
use wgrnn::{random_batch, Activation, Dropout, Grads, Input, ModelConfig, ParamLayout, SeqShape, Want};

const ACTS: [Activation; 3] = [Activation::Tanh, Activation::Sigmoid, Activation::Relu];

/// The packed kernels this machine can run; the portable one always.
fn kernels() -> Vec<Kernel> {
    [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
        .into_iter()
        .filter(|k| k.available())
        .collect()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8;
            x as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn f_prime(act: Activation, h: f64) -> f64 {
    match act {
        Activation::Tanh => 1.0 - h * h,
        Activation::Sigmoid => h * (1.0 - h),
        Activation::Relu => (h > 0.0) as u8 as f64,
    }
}

fn f(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Relu => z.max(0.0),
    }
}

/// One step on (nb, H) for both sides, checked element by element against an f64
/// evaluation, and bitwise across kernels; H is rarely a multiple of the SIMD width.
#[test]
fn step_matches_f64_and_kernels_agree_bitwise() {
    for (nb, h) in [(1, 1), (1, 17), (2, 31), (5, 33), (7, 64), (9, 100), (13, 47), (3, 130)] {
        let w = values(h * h, 1); // (H, H)
        let a = values(nb * h, 2); // (nb, H)
        let c0 = values(nb * h, 3); // (nb, H)
        let hs: Vec<f32> = values(nb * h, 4).iter().map(|v| v.tanh()).collect(); // (nb, H)
        for act in ACTS {
            for side in [Side::Forward, Side::Backward] {
                let mut first: Option<Vec<u32>> = None;
                for kernel in kernels() {
                    let mut packed = PackedW::default();
                    packed.pack(kernel, &w, h, side);
                    let mut c = c0.clone();
                    let epi = match side {
                        Side::Forward => Epilogue::Activate(act),
                        Side::Backward => Epilogue::Grad(act, &hs),
                    };
                    step(&packed, Some(&a), &mut c, epi);
                    for i in 0..nb {
                        for j in 0..h {
                            let z: f64 = c0[i * h + j] as f64
                                + (0..h)
                                    .map(|k| {
                                        let b = match side {
                                            Side::Forward => w[j * h + k],
                                            Side::Backward => w[k * h + j],
                                        };
                                        a[i * h + k] as f64 * b as f64
                                    })
                                    .sum::<f64>();
                            let want = match side {
                                Side::Forward => f(act, z),
                                Side::Backward => z * f_prime(act, hs[i * h + j] as f64),
                            };
                            let got = c[i * h + j] as f64;
                            assert!(
                                (got - want).abs() <= 1e-5 * (1.0 + want.abs()) * (h as f64).sqrt(),
                                "{kernel:?} {side:?} {act:?} nb={nb} H={h} [{i},{j}]: {got} vs {want}"
                            );
                        }
                    }
                    match &first {
                        None => first = Some(bits(&c)),
                        Some(f) => assert_eq!(f, &bits(&c), "{kernel:?} {side:?} {act:?} nb={nb} H={h}"),
                    }
                }
            }
        }
    }
}

/// A row's result does not depend on the rows beside it: the whole block at once equals
/// the same rows split into unequal shards (so, into other micro-tiles).
#[test]
fn rows_do_not_depend_on_their_shard() {
    let (nb, h) = (19, 45);
    let w = values(h * h, 5);
    let a = values(nb * h, 6);
    let c0 = values(nb * h, 7);
    for kernel in kernels() {
        let mut packed = PackedW::default();
        packed.pack(kernel, &w, h, Side::Forward);
        let mut whole = c0.clone();
        step(&packed, Some(&a), &mut whole, Epilogue::Activate(Activation::Tanh));
        for cut in [1, 5, 8, 13] {
            let mut split = c0.clone();
            let (c_lo, c_hi) = split.split_at_mut(cut * h);
            let (a_lo, a_hi) = a.split_at(cut * h);
            step(&packed, Some(a_hi), c_hi, Epilogue::Activate(Activation::Tanh));
            step(&packed, Some(a_lo), c_lo, Epilogue::Activate(Activation::Tanh));
            assert_eq!(bits(&whole), bits(&split), "{kernel:?} cut at row {cut}");
        }
    }
}

/// Loss and gradients of the whole model on `kernel`, inside a pool of `threads` threads
/// (the recurrence shards its rows over the pool); with dropout, the masks of update 5.
fn run(
    cfg: &ModelConfig,
    b: usize,
    t: usize,
    lengths: &Option<Vec<u32>>,
    kernel: Kernel,
    threads: usize,
) -> (f64, Grads<f32>) {
    let layout = ParamLayout::new(cfg);
    let params = layout.init(cfg, 11);
    let mut batch = random_batch(cfg, b, t, true, 3);
    batch.lengths = lengths.clone();
    let key = MaskKey::new(&cfg.dropout, 5);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut act = Activations::default();
        let mut grads = Grads::default();
        let want = Want { dx: true, dh0: true };
        forward_into_with(cfg, &layout, &params, &batch, Some(&key), &mut act, kernel);
        backward_into_with(
            cfg,
            &layout,
            &params,
            &batch,
            &act,
            want,
            &mut Scratch::default(),
            &mut grads,
            kernel,
        );
        (act.loss, grads)
    })
}

/// (model, B, T, lengths)
fn configs() -> Vec<(ModelConfig, usize, usize, Option<Vec<u32>>)> {
    let mut out = Vec::new();
    // (H, B, T, L, activation, embedding, sequence shape): H off the SIMD widths, B = 1,
    // B odd (unequal shards), big enough that the recurrence shards over threads.
    for (h, b, t, l, act, embed, seq) in [
        (37, 1, 9, 1, Activation::Tanh, None, SeqShape::ManyToMany),
        (67, 7, 40, 2, Activation::Tanh, Some(5), SeqShape::ManyToMany),
        (33, 5, 12, 1, Activation::Sigmoid, None, SeqShape::ManyToOne),
        (70, 9, 30, 1, Activation::Relu, Some(4), SeqShape::OneToMany),
    ] {
        let mut cfg = ModelConfig::char_lm(13, h, l);
        cfg.input = Input::Tokens { vocab: 13, embed };
        cfg.activation = act;
        cfg.seq = seq;
        out.push((cfg, b, t, None));
    }
    // the nn.RNN options: each sequence's own length (a 1 among them), reverse directions,
    // no biases, dropout between layers
    let lengths = |b: usize, t: usize| Some((0..b).map(|i| (i * 7 % t + 1) as u32).collect());
    for (h, b, t, l, act, seq, bidirectional, bias, p) in [
        (45, 7, 20, 2, Activation::Tanh, SeqShape::ManyToMany, true, false, 0.3),
        (37, 5, 17, 1, Activation::Relu, SeqShape::ManyToOne, true, true, 0.0),
        (33, 9, 25, 2, Activation::Sigmoid, SeqShape::OneToMany, false, true, 0.5),
    ] {
        let mut cfg = ModelConfig::char_lm(13, h, l);
        cfg.input = Input::Tokens {
            vocab: 13,
            embed: Some(6),
        };
        cfg.activation = act;
        cfg.seq = seq;
        cfg.bidirectional = bidirectional;
        (cfg.bias, cfg.head_bias) = (bias, bias);
        cfg.dropout = Dropout { p, seed: 4 };
        out.push((cfg, b, t, lengths(b, t)));
    }
    out
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 2e-5 * scale, "{what}[{i}]: {g} vs reference {w}");
    }
}

/// Training-step results on the packed kernels: close to the reference path, identical bits
/// on every kernel, and identical bits however many threads shard the batch.
#[test]
fn model_gradients_match_reference_and_do_not_depend_on_kernel_or_threads() {
    for (cfg, b, t, lens) in configs() {
        let name = format!("{cfg} B={b} T={t} lengths {lens:?}");
        let (ref_loss, reference) = run(&cfg, b, t, &lens, Kernel::Reference, 2);
        let (loss0, first) = run(&cfg, b, t, &lens, Kernel::Portable, 1);
        assert!((loss0 - ref_loss).abs() <= 1e-5 * ref_loss.abs(), "{name}: loss");
        close(&format!("{name}: params"), &first.params, &reference.params);
        close(
            &format!("{name}: dx"),
            first.dx.as_ref().unwrap(),
            reference.dx.as_ref().unwrap(),
        );
        close(
            &format!("{name}: dh0"),
            first.dh0.as_ref().unwrap(),
            reference.dh0.as_ref().unwrap(),
        );
        for kernel in kernels() {
            for threads in [1, 2, 3] {
                let (loss, g) = run(&cfg, b, t, &lens, kernel, threads);
                assert_eq!(
                    loss.to_bits(),
                    loss0.to_bits(),
                    "{name} {kernel:?} {threads} threads: loss"
                );
                assert_eq!(
                    bits(&g.params),
                    bits(&first.params),
                    "{name} {kernel:?} {threads} threads"
                );
                assert_eq!(g.dx, first.dx, "{name} {kernel:?} {threads} threads: dx");
                assert_eq!(g.dh0, first.dh0, "{name} {kernel:?} {threads} threads: dh0");
            }
        }
    }
}

#[test]
fn kernel_names_parse_and_the_chosen_one_runs_here() {
    for k in [Kernel::Reference, Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
        let name = format!("{k:?}").to_lowercase();
        assert_eq!(Kernel::parse(&name), Some(k));
    }
    assert_eq!(Kernel::parse("sse"), None);
    assert!(Kernel::best().available());
    assert!(Kernel::detect().available());
}

/// The big products (`cpu::gemm` on the packed kernels: op(B) packed per call, k in blocks,
/// tall A in row blocks, a transposed A read in place) against the `gemm` crate, bitwise
/// equal across kernels and thread counts, on shapes past every block size and off every
/// SIMD width.
#[test]
fn gemm_on_packed_kernels_matches_reference() {
    use wgrnn::cpu::matmul::gemm_with;
    use wgrnn::cpu::Op;
    let serial = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (m, n, k) in [(1, 16, 1), (7, 17, 300), (250, 45, 600), (130, 33, 70), (300, 64, 257)] {
        let a = values(m * k, 8);
        let b = values(k * n, 9);
        let c0 = values(m * n, 10);
        for (op_a, op_b) in [(Op::N, Op::N), (Op::N, Op::T), (Op::T, Op::N), (Op::T, Op::T)] {
            for beta in [0.0f32, 1.0] {
                let what = format!("m={m} n={n} k={k} {op_a:?}{op_b:?} beta={beta}");
                let mut want = c0.clone();
                gemm_with(Kernel::Reference, m, n, k, &a, op_a, &b, op_b, beta, &mut want);
                let mut first: Option<Vec<u32>> = None;
                for kernel in kernels() {
                    // On a pool thread a product runs serially; from outside the pool a large
                    // one splits its rows over the global pool (unequal chunks here).
                    for split in [false, true] {
                        let mut c = c0.clone();
                        let mut run = || gemm_with(kernel, m, n, k, &a, op_a, &b, op_b, beta, &mut c);
                        if split {
                            run()
                        } else {
                            serial.install(run)
                        }
                        close(&format!("{what} {kernel:?}"), &c, &want);
                        match &first {
                            None => first = Some(bits(&c)),
                            Some(f) => assert_eq!(f, &bits(&c), "{what} {kernel:?} split={split}"),
                        }
                    }
                }
            }
        }
    }
}
