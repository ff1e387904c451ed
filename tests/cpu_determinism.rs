//! The CPU path gives the same bits on every run: the recurrence is sharded over threads
//! (large enough here to shard) and the products run on a thread pool, yet every sum has a
//! fixed order.

use wgrnn::{random_batch, CpuEngine, Engine, ModelConfig, OptimConfig, OptimKind, ParamLayout};

fn run() -> (Vec<f32>, Vec<f32>) {
    let cfg = ModelConfig::char_lm(11, 64, 2);
    let layout = ParamLayout::new(&cfg);
    let opt = OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-2,
    );
    let mut e = CpuEngine::new(cfg, opt, layout.init(&cfg, 7)).unwrap();
    let losses = (0..5)
        .map(|i| {
            e.train_step(&random_batch(&cfg, 16, 20, i % 2 == 1, i), true)
                .unwrap()
                .unwrap()
        })
        .collect();
    (losses, e.params().unwrap())
}

#[test]
fn two_runs_are_bitwise_identical() {
    let (l1, p1) = run();
    let (l2, p2) = run();
    assert_eq!(
        l1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        l2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert!(
        p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()),
        "parameters differ between runs"
    );
}

/// The engine reuses its buffers across steps; results must not depend on what a previous
/// batch of another shape left in them.
#[test]
fn reused_buffers_match_fresh_ones_across_shape_changes() {
    use wgrnn::cpu::{backward, forward};
    use wgrnn::{Input, SeqShape, Want};
    for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
        let mut cfg = ModelConfig::char_lm(7, 6, 2);
        cfg.input = Input::Tokens {
            vocab: 7,
            embed: Some(3),
        };
        cfg.seq = seq;
        let layout = ParamLayout::new(&cfg);
        let params = layout.init(&cfg, 3);
        let opt = OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 0.1);
        let mut e = CpuEngine::new(cfg, opt, params.clone()).unwrap();
        let want = Want { dx: true, dh0: true };
        for (i, (b, t, h0)) in [(4, 9, true), (2, 3, false), (5, 6, true), (4, 9, false)]
            .into_iter()
            .enumerate()
        {
            let batch = random_batch(&cfg, b, t, h0, i as u64);
            let (loss, g) = e.loss_and_grads(&batch, want).unwrap();
            let act = forward(&cfg, &layout, &params, &batch);
            let fresh = backward(&cfg, &layout, &params, &batch, &act, want);
            assert_eq!(loss, act.loss as f32, "{seq} B={b} T={t}");
            assert_eq!(g.params, fresh.params, "{seq} B={b} T={t}");
            assert_eq!(g.dx, fresh.dx, "{seq} B={b} T={t}");
            assert_eq!(g.dh0, fresh.dh0, "{seq} B={b} T={t}");
            let out = e.forward(&batch).unwrap();
            assert_eq!(out.out, act.out);
            assert_eq!(out.final_state, act.final_state(t));
        }
    }
}
