//! Every recurrent step kernel (plain, subgroup, tiled) against its CPU twin and, bit for bit,
//! the plain kernel, on awkward shapes: sizes that do not divide a tile, 1s, every way a step
//! finds its input, ragged lengths, carried states and gradients, non-zero offsets.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wgrnn::cpu::forward::{activate, activation_grad};
use wgrnn::cpu::{gemm, Op};
use wgrnn::gpu::kernels::{self, act_code, at, Pre, StepAt, StepGrad, StepKernel, StepWeights};
use wgrnn::Activation;

mod kernel_util;
use kernel_util::*;

/// Every step kernel this device runs, the plain reference first (the subgroup kernels only
/// where the adapter has usable subgroups; the others always).
fn step_kernels() -> Vec<StepKernel> {
    let steps = ctx().kernels().unwrap().steps();
    assert_eq!(steps[0], StepKernel::Plain);
    assert!(steps.contains(&StepKernel::Tile32));
    steps
}

/// Asserts that every step kernel's results (`runs`, the plain kernel's first) have the
/// plain kernel's bits.
fn same_bits(case: &str, runs: &[(StepKernel, Vec<f32>)]) {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for (k, got) in &runs[1..] {
        assert!(bits(got) == bits(&runs[0].1), "{case}: {k} differs from {}", runs[0].0);
    }
}

// Shapes: 1s, H not a multiple of 4 or 8 (the tiled kernel's scalar loads), H > 32 (several
// column tiles of a subgroup or a 32 × 32 tile), B > 32 (several row tiles, with and without
// vec4 loads), B not a multiple of 8, H = 16 / 24 / 36 (full 8-step groups or 16-step
// stages, with and without a tail).
const STEP_SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (3, 5),
    (2, 67),
    (5, 13),
    (37, 6),
    (33, 8),
    (9, 16),
    (17, 36),
    (8, 24),
];

/// Every step kernel against the CPU, and the plain kernel's bits.
#[test]
fn rnn_step_forward_matches_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(b, h) in &STEP_SHAPES {
        for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
            // 0: no input, 1: pre_t in place, 2: gathered from W_ih (H, V = 3) by token
            for mode in 0..3 {
                for bias in [true, false] {
                    // W_hh at 64, biases after, then W_ih
                    let w = rand_vec(&mut rng, 64 + h * h + 2 * h + 3 * h, 1.0);
                    let (w_off, bih, bhh, wih) = (64, 64 + h * h, 64 + h * h + h, 64 + h * h + 2 * h);
                    // (2, B) token ids, the step reads row 1; 7 is out of range and is clamped
                    let tok: Vec<u32> = (0..2 * b).map(|i| [0, 2, 1, 7][i % 4]).collect();
                    // step 2: every third sequence has length 1 and keeps its state
                    let lengths: Vec<u32> = (0..b).map(|i| if i % 3 == 1 { 1 } else { 2 + i as u32 % 2 }).collect();
                    let mut hs = rand_vec(&mut rng, 3 * b * h, 2.0); // (T+1 = 3, B, H)
                                                                     // large pre-activations: tanh must saturate, never NaN
                    hs[2 * b * h] = 80.0;
                    // in f64: the sum of pre, biases and H products of size 2 cancels to
                    // far below its terms, where f32 on both sides would differ by more
                    // than the tolerance
                    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
                    let mut want: Vec<f64> = match mode {
                        0 => vec![0.0; b * h],
                        1 => f64s(&hs[2 * b * h..]),
                        _ => (0..b * h)
                            .map(|i| w[wih + (i % h) * 3 + (tok[b + i / h] as usize).min(2)] as f64)
                            .collect(),
                    };
                    for row in want.chunks_exact_mut(h).filter(|_| bias) {
                        for j in 0..h {
                            row[j] += (w[bih + j] + w[bhh + j]) as f64;
                        }
                    }
                    let (h_prev, w_hh) = (f64s(&hs[b * h..2 * b * h]), f64s(&w[w_off..w_off + h * h]));
                    gemm(b, h, h, &h_prev, Op::N, &w_hh, Op::T, 1.0, &mut want);
                    activate(act, &mut want);
                    let mut want: Vec<f32> = want.iter().map(|&x| x as f32).collect();
                    for (i, row) in want.chunks_exact_mut(h).enumerate().filter(|(i, _)| lengths[*i] < 2) {
                        row.copy_from_slice(&hs[(b + i) * h..(b + i + 1) * h]);
                    }
                    let case = format!("B={b} H={h} {act} pre mode {mode} bias {bias}");
                    let mut runs = Vec::new();
                    for sk in step_kernels() {
                        let (gw, gh, gtok, info) = (buf(&w), buf(&hs), buf(&tok), buf(&info_words(1.0, &lengths)));
                        let pre = match mode {
                            0 => Pre::None,
                            1 => Pre::InPlace,
                            _ => Pre::Tokens {
                                tok: at(&gtok, b),
                                vocab: 3,
                                table: wih,
                                strides: (3, 1),
                            },
                        };
                        let sw = StepWeights {
                            w: &gw,
                            w_hh: w_off,
                            bias: bias.then_some((bih, bhh)),
                        };
                        let step = StepAt {
                            info: &info,
                            t: 2,
                            b0: 1,
                        };
                        let rows = (2 * b * h, b * h);
                        let d = kernels::rnn_step_forward(sk.forward(), b, h, sw, &gh, rows, pre, act_code(act), step);
                        run(vec![d.unwrap()]);
                        let got = read(&gh, 2 * b * h, b * h);
                        close(&format!("{sk} {case}"), &got, &want);
                        // the other rows are untouched
                        assert_eq!(read(&gh, 0, 2 * b * h), hs[..2 * b * h].to_vec(), "{sk} {case}");
                        runs.push((sk, got));
                    }
                    same_bits(&case, &runs);
                }
            }
        }
    }
}

/// Every step kernel against the CPU, and the plain kernel's bits.
#[test]
fn rnn_step_backward_matches_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(b, h) in &STEP_SHAPES {
        for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
            // (next step, carry past the length, copy on the last step)
            for (has_next, carry, first) in [(true, true, false), (false, false, true), (true, false, true)] {
                // W_hh at 8 (aligned for vec4 loads where H is a multiple of 4) or 5
                let w_off = if has_next && carry { 8 } else { 5 };
                let w = rand_vec(&mut rng, w_off + h * h, 1.0);
                // (2, B, S) with a row stride S > H and the direction's columns from 2:
                // step 2 reads row 1 and carries into row 0
                let (stride, col) = (h + 3, 2);
                let dh = rand_vec(&mut rng, 2 * b * stride, 1.0);
                let mut hv = rand_vec(&mut rng, b * h, 1.0);
                if act != Activation::Tanh {
                    hv.iter_mut().for_each(|v| *v = v.abs());
                }
                hv[0] = 0.0; // relu kink
                let dz0 = rand_vec(&mut rng, 3 * b * h, 1.0); // rows: out, next, first
                                                              // step 2: lengths 1 (padding), 2 (the last step), 3
                let lengths: Vec<u32> = (0..b).map(|i| 1 + i as u32 % 3).collect();
                let mut g: Vec<f32> = (0..b * h).map(|i| dh[(b + i / h) * stride + col + i % h]).collect();
                if has_next {
                    gemm(b, h, h, &dz0[b * h..2 * b * h], Op::N, &w[w_off..], Op::N, 1.0, &mut g);
                }
                let (mut want_dz, mut want_dh) = (dz0.clone(), dh.clone());
                for i in 0..b * h {
                    let (bi, j) = (i / h, i % h);
                    if lengths[bi] < 2 {
                        want_dz[i] = 0.0;
                        if carry {
                            want_dh[bi * stride + col + j] += g[i];
                        }
                        continue;
                    }
                    want_dz[i] = g[i] * activation_grad(act, hv[i]);
                    if first && lengths[bi] == 2 {
                        want_dz[2 * b * h + i] = want_dz[i];
                    }
                }
                let case = format!("B={b} H={h} {act} next={has_next} carry={carry} first={first}");
                let mut runs = Vec::new();
                for sk in step_kernels() {
                    let info = buf(&info_words(1.0, &lengths));
                    let (gw, gdh, gh, gdz) = (buf(&w), buf(&dh), buf(&hv), buf(&dz0));
                    let grad = StepGrad {
                        w_hh: at(&gw, w_off),
                        dh: at(&gdh, b * stride + col),
                        dh_stride: stride,
                        h: at(&gh, 0),
                        dz: at(&gdz, 0),
                        next_off: has_next.then_some(b * h),
                        carry_off: carry.then_some(col),
                        first_off: first.then_some(2 * b * h),
                    };
                    let step = StepAt {
                        info: &info,
                        t: 2,
                        b0: 1,
                    };
                    run(vec![kernels::rnn_step_backward(
                        sk.backward(),
                        b,
                        h,
                        grad,
                        act_code(act),
                        step,
                    )
                    .unwrap()]);
                    let (got_dz, got_dh) = (read(&gdz, 0, 3 * b * h), read(&gdh, 0, 2 * b * stride));
                    close(&format!("{sk} {case} dz"), &got_dz, &want_dz);
                    close(&format!("{sk} {case} dh"), &got_dh, &want_dh);
                    runs.push((sk, [got_dz, got_dh].concat()));
                }
                same_bits(&case, &runs);
            }
        }
    }
}
