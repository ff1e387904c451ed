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
