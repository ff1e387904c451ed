//! Every WGSL kernel but the recurrent steps (gpu_step_kernel_units.rs) against its CPU twin
//! on awkward shapes: sizes that do not divide the workgroup, 1s in every position, O = 2,
//! and non-zero element offsets into the buffers.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgrnn::cpu::loss::{mse_backward, mse_forward, softmax_ce_backward, softmax_ce_forward};
use wgrnn::cpu::optim::{clip, update};
use wgrnn::cpu::{gemm, Op};
use wgrnn::gpu::buffers::upload;
use wgrnn::gpu::kernels::{self, at, mat, Acc, HeadBufs, HeadRows, Kernel, Mat, OptBufs, Sum};
use wgrnn::{Clip, Head, OptimConfig, OptimKind, OptimState};

mod kernel_util;
use kernel_util::*;

/// Every matrix-product kernel this device runs, the naive reference first (the subgroup
/// kernel only where the adapter has usable subgroups; the others always).
fn matmul_kernels() -> Vec<Kernel> {
    let k = ctx().kernels().unwrap();
    k.matmuls().into_iter().map(|m| m.kernel()).collect()
}

/// The logical (rows, cols) operand at `off`, stored transposed when `t`.
fn operand(b: &wgpu::Buffer, off: usize, (rows, cols): (usize, usize), t: bool) -> Mat<'_> {
    if t {
        mat(b, off, cols, rows).t()
    } else {
        mat(b, off, rows, cols)
    }
}

#[test]
fn matmul_kernels_all_transposes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // k = 8, 16, 17: the subgroup kernel's full 8-step groups with and without a tail;
    // n = 70 > 32: more than one column tile of a subgroup
    // (130, 129, 33): several tiles of every tiled kernel, none full, stages of q with a
    // tail of 1
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (65, 2, 31),
        (1, 70, 3),
        (40, 1, 50),
        (33, 34, 35),
        (9, 70, 16),
        (16, 40, 17),
        (8, 32, 8),
        (130, 129, 33),
    ];
    // element offsets deliberately not aligned: the tiled kernels' scalar loads
    let unaligned = shapes.map(|s| (s, (3, 5, 7)));
    // every leading dimension and offset a multiple of 4: their vec4 loads, with and
    // without a tail of q and partial tiles
    let aligned = [(4, 4, 4), (8, 32, 8), (64, 36, 20), (132, 68, 40)].map(|s| (s, (4, 8, 12)));
    let mut worst = 0.0f32;
    let mut cases = 0;
    for &((m, n, k), (ao, bo, co)) in unaligned.iter().chain(&aligned) {
        for ta in [false, true] {
            for tb in [false, true] {
                for beta in [false, true] {
                    let a = rand_vec(&mut rng, m * k, 1.0);
                    let b = rand_vec(&mut rng, k * n, 1.0);
                    let c0 = rand_vec(&mut rng, m * n, 1.0);
                    let mut want = c0.clone();
                    let op = |t: bool| if t { Op::T } else { Op::N };
                    gemm(m, n, k, &a, op(ta), &b, op(tb), if beta { 1.0 } else { 0.0 }, &mut want);
                    let pad = |v: &[f32], off: usize| {
                        let mut p = vec![9.0f32; off];
                        p.extend_from_slice(v);
                        p.extend_from_slice(&[9.0; 3]);
                        p
                    };
                    let (ga, gb) = (buf(&pad(&a, ao)), buf(&pad(&b, bo)));
                    let mut results = Vec::new();
                    // row sums of op(A) at the end of C's buffer (2 copies), over an old value
                    let rs0 = rand_vec(&mut rng, m, 1.0);
                    let mut want_rs = if beta { rs0.clone() } else { vec![0.0; m] };
                    for (i, w) in want_rs.iter_mut().enumerate() {
                        for q in 0..k {
                            *w += if ta { a[q * m + i] } else { a[i * k + q] };
                        }
                    }
                    let rs_off = co + m * n + 3;
                    for kernel in matmul_kernels() {
                        let mut cbuf = pad(&c0, co);
                        cbuf.extend_from_slice(&rs0);
                        cbuf.extend_from_slice(&rs0);
                        let gc = buf(&cbuf);
                        run(vec![kernels::matmul_row_sums(
                            kernel,
                            mat(&gc, co, m, n),
                            operand(&ga, ao, (m, k), ta),
                            operand(&gb, bo, (k, n), tb),
                            Acc::add_if(beta),
                            (rs_off, rs_off + m),
                        )
                        .unwrap()]);
                        let sums = read(&gc, rs_off, 2 * m);
                        assert_eq!(
                            sums[..m],
                            want_rs[..],
                            "{kernel:?} row sums m={m} k={k} ta={ta} beta={beta}"
                        );
                        assert_eq!(sums[m..], want_rs[..], "{kernel:?} row sums copy m={m} k={k}");
                        let all = read(&gc, 0, co + m * n + 3);
                        assert!(
                            all[..co].iter().chain(&all[co + m * n..]).all(|&v| v == 9.0),
                            "{kernel:?} wrote outside C"
                        );
                        let got = all[co..co + m * n].to_vec();
                        worst = worst.max(close(
                            &format!("{kernel:?} m={m} n={n} k={k} ta={ta} tb={tb} beta={beta}"),
                            &got,
                            &want,
                        ));
                        results.push(got);
                        cases += 1;
                    }
                    // same summation order: every kernel reproduces the naive one bit for bit
                    for (kernel, r) in matmul_kernels().iter().zip(&results).skip(1) {
                        assert_eq!(&results[0], r, "naive vs {kernel:?} m={m} n={n} k={k} ta={ta} tb={tb}");
                    }
                }
            }
        }
    }
    println!("matmul: {cases} cases, max |diff| vs cpu::gemm {worst:.3e}");
}

/// The rows of a head kernel test: (N rows, B): N / B steps of B sequences, every third
/// sequence one step long (its later rows carry no target) when `masked`; and whether a
/// row carries a target.
fn head_rows(n: usize, b: usize, masked: bool) -> (HeadRows, Vec<u32>, Vec<bool>) {
    let steps = n / b;
    let lengths: Vec<u32> = (0..b).map(|i| if i % 3 == 1 { 1 } else { steps as u32 }).collect();
    let valid = (0..n).map(|r| !masked || r / b < lengths[r % b] as usize).collect();
    let rows = HeadRows {
        rows: n,
        batch: b,
        b0: 1,
        masked,
    };
    (rows, lengths, valid)
}

#[test]
fn softmax_ce_matches_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for &(n, o, b) in &[(1, 2, 1), (5, 7, 5), (70, 2, 7), (3, 65, 1)] {
        for (masked, bias_on) in [(false, true), (true, true), (true, false)] {
            let logits = rand_vec(&mut rng, n * o, 30.0); // large logits: max subtraction matters
            let bias = rand_vec(&mut rng, 3 + o, 1.0);
            let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..o as u32)).collect();
            let (rows_at, lengths, valid) = head_rows(n, b, masked);
            let scale = 1.0 / valid.iter().filter(|&&v| v).count() as f32;
            let info = buf(&info_words(scale, &lengths));
            let (gw, gl, gy) = (buf(&bias), buf(&logits), buf(&y));
            let (probs, g, rows) = (
                buf(&vec![0.0f32; n * o]),
                buf(&vec![0.0f32; n * o]),
                buf(&vec![0.0f32; n]),
            );
            let loss = buf(&[0.0f32; 4]);
            let io = HeadBufs {
                logits: &gl,
                y: &gy,
                out: &probs,
                g: &g,
                loss_rows: &rows,
                info: &info,
            };
            run(vec![
                kernels::softmax_ce(rows_at, o, bias_on.then(|| at(&gw, 3)), io).unwrap(),
                kernels::reduce_sum(n, at(&rows, 0), false, 1.0, at(&loss, 2), false).unwrap(),
            ]);
            let with_bias: Vec<f32> = if bias_on {
                logits.iter().enumerate().map(|(i, &l)| l + bias[3 + i % o]).collect()
            } else {
                logits.clone()
            };
            let mut p = vec![0.0; n * o];
            softmax_ce_forward(&with_bias, &y, o, &mut p);
            let mut dl = vec![0.0; n * o];
            softmax_ce_backward(&p, &y, o, scale, &mut dl);
            let mut sum = 0.0;
            for r in 0..n {
                let mut one = vec![0.0; o];
                let row_loss = softmax_ce_forward(&with_bias[r * o..(r + 1) * o], &y[r..r + 1], o, &mut one);
                if valid[r] {
                    sum += row_loss;
                } else {
                    dl[r * o..(r + 1) * o].fill(0.0);
                }
            }
            let case = format!("N={n} O={o} masked={masked} bias={bias_on}");
            close(&format!("softmax probs {case}"), &read(&probs, 0, n * o), &p);
            close(&format!("softmax grad {case}"), &read(&g, 0, n * o), &dl);
            close(
                &format!("softmax loss {case}"),
                &read(&loss, 2, 1),
                &[(sum * scale as f64) as f32],
            );
        }
    }
}

#[test]
fn mse_matches_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for head in [Head::Linear, Head::Sigmoid] {
        for &(n, o, b) in &[(1, 1, 1), (5, 2, 5), (70, 3, 7)] {
            for (masked, bias_on) in [(false, true), (true, false)] {
                let logits = rand_vec(&mut rng, n * o, 3.0);
                let bias = rand_vec(&mut rng, o, 1.0);
                let y = rand_vec(&mut rng, n * o, 1.0);
                let (rows_at, lengths, valid) = head_rows(n, b, masked);
                let scale = 1.0f32; // sum reduction
                let info = buf(&info_words(scale, &lengths));
                let (gw, gl, gy) = (buf(&bias), buf(&logits), buf(&y));
                let (yh, g, rows, loss) = (
                    buf(&vec![0.0f32; n * o]),
                    buf(&vec![0.0f32; n * o]),
                    buf(&vec![0.0f32; n]),
                    buf(&[0.0f32; 1]),
                );
                let io = HeadBufs {
                    logits: &gl,
                    y: &gy,
                    out: &yh,
                    g: &g,
                    loss_rows: &rows,
                    info: &info,
                };
                run(vec![
                    kernels::mse(
                        rows_at,
                        o,
                        bias_on.then(|| at(&gw, 0)),
                        head == Head::Sigmoid,
                        (2.0 / o as f64) as f32,
                        io,
                    )
                    .unwrap(),
                    kernels::reduce_sum(n, at(&rows, 0), false, 1.0 / o as f32, at(&loss, 0), false).unwrap(),
                ]);
                let with_bias: Vec<f32> = if bias_on {
                    logits.iter().enumerate().map(|(i, &l)| l + bias[i % o]).collect()
                } else {
                    logits.clone()
                };
                let mut p = vec![0.0; n * o];
                mse_forward(head, &with_bias, &y, o, 1.0 / o as f64, &mut p);
                let mut dl = vec![0.0; n * o];
                mse_backward(head, &p, &y, 2.0 / o as f64, scale, &mut dl);
                let mut sum = 0.0;
                for r in (0..n).filter(|&r| valid[r]) {
                    let mut one = vec![0.0; o];
                    let (yr, lr) = (&y[r * o..(r + 1) * o], &with_bias[r * o..(r + 1) * o]);
                    sum += mse_forward(head, lr, yr, o, 1.0 / o as f64, &mut one);
                }
                for r in (0..n).filter(|&r| !valid[r]) {
                    dl[r * o..(r + 1) * o].fill(0.0);
                }
                let case = format!("{head} N={n} O={o} masked={masked} bias={bias_on}");
                close(&format!("mse y_hat {case}"), &read(&yh, 0, n * o), &p);
                close(&format!("mse grad {case}"), &read(&g, 0, n * o), &dl);
                close(&format!("mse loss {case}"), &read(&loss, 0, 1), &[sum as f32]);
            }
        }
    }
}

#[test]
fn reduce_sum_matches_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for &n in &[1usize, 255, 257, 1000, 100_003] {
        let v = rand_vec(&mut rng, n + 2, 1.0);
        for square in [false, true] {
            // accumulate: 0.25 already in dst is added
            let (src, dst) = (buf(&v), buf(&[0.0f32, 0.25]));
            run(vec![kernels::reduce_sum(
                n,
                at(&src, 2),
                square,
                0.5,
                at(&dst, 1),
                true,
            )
            .unwrap()]);
            let want: f64 = v[2..]
                .iter()
                .map(|&x| if square { x as f64 * x as f64 } else { x as f64 })
                .sum::<f64>()
                * 0.5
                + 0.25;
            let got = read(&dst, 1, 1)[0] as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "reduce_sum n={n} square={square}: {got} vs {want}"
            );
        }
    }
}

/// Two sums in one dispatch (the loss and Σ g² of a training step) give the bits of two
/// separate ones.
#[test]
fn reduce_sums_match_reduce_sum() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (u, v) = (rand_vec(&mut rng, 1003, 1.0), rand_vec(&mut rng, 70, 3.0));
    let (gu, gv) = (buf(&u), buf(&v));
    let (one, two) = (buf(&[0.0f32; 4]), buf(&[0.0f32, 0.0, 0.0, 0.5]));
    run(vec![
        kernels::reduce_sum(1000, at(&gu, 3), false, 0.25, at(&one, 0), false).unwrap(),
        kernels::reduce_sum(70, at(&gv, 0), true, 1.0, at(&one, 1), false).unwrap(),
    ]);
    let first = Sum {
        n: 1000,
        src: at(&gu, 3),
        square: false,
        factor: 0.25,
        dst: at(&two, 0),
        accumulate: false,
    };
    let second = Sum {
        n: 70,
        src: at(&gv, 0),
        square: true,
        factor: 1.0,
        dst: at(&two, 1),
        accumulate: false,
    };
    run(vec![kernels::reduce_sums(first, second).unwrap()]);
    assert_eq!(read(&two, 0, 2), read(&one, 0, 2));
    assert_eq!(
        read(&two, 3, 1),
        vec![0.5],
        "reduce_sums wrote outside its destinations"
    );
}

#[test]
fn col_sum_matches_cpu_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(r, c) in &[(1, 1), (7, 3), (100, 65), (3, 130)] {
        let m = rand_vec(&mut rng, 4 + r * c, 1.0);
        let (src, dst) = (buf(&m), buf(&vec![0.0f32; 2 * c + 64]));
        run(vec![
            kernels::col_sum(r, c, at(&src, 4), at(&dst, 0), c + 64, false).unwrap()
        ]);
        let mut want = vec![0.0f32; c];
        for row in m[4..].chunks_exact(c) {
            for (a, &v) in want.iter_mut().zip(row) {
                *a += v;
            }
        }
        assert_eq!(read(&dst, 0, c), want, "col_sum rows={r} cols={c}");
        assert_eq!(read(&dst, c + 64, c), want, "col_sum second copy rows={r} cols={c}");
        // accumulate: the sums continue from what dst holds, in the same order
        run(vec![
            kernels::col_sum(r, c, at(&src, 4), at(&dst, 0), c + 64, true).unwrap()
        ]);
        let mut again = want.clone();
        for row in m[4..].chunks_exact(c) {
            for (a, &v) in again.iter_mut().zip(row) {
                *a += v;
            }
        }
        assert_eq!(read(&dst, 0, c), again, "col_sum accumulate rows={r} cols={c}");
    }
}

#[test]
fn embed_gather_and_token_scatter_match_cpu_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for &(n, v, c) in &[(1, 2, 1), (7, 3, 5), (130, 5, 67)] {
        let tok: Vec<u32> = (0..n).map(|_| rng.random_range(0..v as u32)).collect();
        let table = rand_vec(&mut rng, 2 + v * c, 1.0);
        let gtok = buf(&tok);
        // embedding rows (V, C): stride_v = C, stride_c = 1; W_ih columns (C, V): stride_v = 1, stride_c = V
        for (sv, sc) in [(c, 1), (1, v)] {
            let gt = buf(&table);
            let out = buf(&vec![0.0f32; n * c]);
            run(vec![kernels::embed_gather(
                n,
                c,
                at(&gt, 2),
                (sv, sc),
                &gtok,
                at(&out, 0),
            )
            .unwrap()]);
            let want: Vec<f32> = (0..n * c)
                .map(|i| table[2 + tok[i / c] as usize * sv + (i % c) * sc])
                .collect();
            assert_eq!(read(&out, 0, n * c), want, "embed_gather n={n} v={v} c={c} sv={sv}");

            let src = rand_vec(&mut rng, n * c, 1.0);
            let gsrc = buf(&src);
            let dst = buf(&vec![7.0f32; 2 + v * c]); // stale values must be overwritten
            run(vec![kernels::token_scatter(
                n,
                c,
                v,
                at(&gsrc, 0),
                &gtok,
                at(&dst, 2),
                (sv, sc),
                false,
            )
            .unwrap()]);
            let mut want = vec![0.0f32; v * c];
            for (row, &id) in src.chunks_exact(c).zip(&tok) {
                for (j, &x) in row.iter().enumerate() {
                    want[id as usize * sv + j * sc] += x;
                }
            }
            assert_eq!(read(&dst, 2, v * c), want, "token_scatter n={n} v={v} c={c} sv={sv}");
            assert_eq!(
                read(&dst, 0, 2),
                vec![7.0, 7.0],
                "token_scatter wrote outside its region"
            );
            // accumulate: a second chunk adds to the region instead of zeroing it
            run(vec![kernels::token_scatter(
                n,
                c,
                v,
                at(&gsrc, 0),
                &gtok,
                at(&dst, 2),
                (sv, sc),
                true,
            )
            .unwrap()]);
            let mut twice = want.clone();
            for (row, &id) in src.chunks_exact(c).zip(&tok) {
                for (j, &x) in row.iter().enumerate() {
                    twice[id as usize * sv + j * sc] += x;
                }
            }
            assert_eq!(
                read(&dst, 2, v * c),
                twice,
                "token_scatter accumulate n={n} v={v} c={c}"
            );
        }
    }
}

#[test]
fn clip_value_matches_cpu_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let g = rand_vec(&mut rng, 131, 2.0);
    let gb = buf(&g);
    run(vec![kernels::clip_value(130, at(&gb, 1), 0.5).unwrap()]);
    let mut want = g[1..].to_vec();
    clip(
        &Clip {
            norm: None,
            value: Some(0.5),
        },
        &mut want,
    );
    assert_eq!(read(&gb, 1, 130), want);
    assert_eq!(read(&gb, 0, 1), vec![g[0]]);
}

/// Three updates of each optimiser, with and without norm clipping and weight decay.
#[test]
fn optimizers_match_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let n = 197;
    let kinds = [
        OptimKind::Sgd { momentum: 0.0 },
        OptimKind::Sgd { momentum: 0.9 },
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        OptimKind::Adagrad { eps: 1e-8 },
    ];
    for kind in kinds {
        for (norm, wd) in [(None, 0.0), (Some(0.3f32), 0.01f32)] {
            let mut cfg = OptimConfig::new(kind, 0.05);
            cfg.weight_decay = wd;
            cfg.clip.norm = norm;
            let mut w = rand_vec(&mut rng, n, 1.0);
            let mut state = OptimState::<f32>::new(&kind, n);
            let gw = buf(&w);
            let slots: Vec<wgpu::Buffer> = (0..2).map(|_| buf(&vec![0.0f32; n])).collect();
            let scalars = buf(&[0.0f32; 4]);
            let probe = buf(&[0.0f32; wgrnn::gpu::scalars::PROBE_WORDS]);
            for step in 1..=3u64 {
                let mut g = rand_vec(&mut rng, n, 1.0);
                let gg = buf(&g);
                let sq: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
                upload(&ctx(), &scalars, 1, &[sq as f32]);
                let clipc = norm.map(|m| (m, 1));
                let bufs = OptBufs {
                    w: &gw,
                    g: &gg,
                    scalars: &scalars,
                    probe: &probe,
                };
                let d = match kind {
                    OptimKind::Sgd { momentum } => kernels::sgd(n, 0.05, wd, momentum, clipc, bufs, &slots[0]),
                    OptimKind::Adam { beta1, beta2, eps } => {
                        // the bias corrections of this step at scalars[2..4], as the engine writes them
                        let bc1 = (1.0 - (beta1 as f64).powi(step as i32)) as f32;
                        let bc2 = (1.0 - (beta2 as f64).powi(step as i32)) as f32;
                        upload(&ctx(), &scalars, 2, &[bc1, bc2]);
                        kernels::adam(n, 0.05, wd, (beta1, beta2, eps), 2, clipc, bufs, (&slots[0], &slots[1]))
                    }
                    OptimKind::Adagrad { eps } => kernels::adagrad(n, 0.05, wd, eps, clipc, bufs, &slots[0]),
                };
                run(vec![d.unwrap()]);
                // finite updates leave the non-finite probe clear
                assert!(read(&probe, 0, 2).iter().all(|&f| f == 0.0));
                clip(&cfg.clip, &mut g);
                update(&cfg, &mut state, &mut w, &g);
                close(
                    &format!("{kind:?} clip={norm:?} step {step} weights"),
                    &read(&gw, 0, n),
                    &w,
                );
                for (i, s) in state.slots.iter().enumerate() {
                    close(&format!("{kind:?} step {step} slot {i}"), &read(&slots[i], 0, n), s);
                }
            }
        }
    }
}
