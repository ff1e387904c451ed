//! CPU path: the matrix-product helper (GFLOP/s), the packed recurrent step against it on one
//! thread (GFLOP/s), and one training step (tokens/s) of the issue-5 workloads A (char-LM
//! H=256) and E (dense regression), sized to finish quickly.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::cpu::forward::activate;
use wgrnn::cpu::matmul::gemm_with;
use wgrnn::cpu::packed::{step, Epilogue, Side};
use wgrnn::cpu::{gemm, Kernel, Op, PackedW};
use wgrnn::{
    random_batch, Activation, CpuEngine, Engine, Head, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout,
    SeqShape,
};

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_gemm");
    g.sample_size(10);
    // (m, n, k): one recurrent step of workload A, its batched input projection, a cube.
    for (m, n, k) in [(64, 256, 256), (4096, 256, 256), (512, 512, 512)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut out = vec![0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64)); // FLOPs: read "elem/s" as FLOP/s
        g.bench_with_input(BenchmarkId::from_parameter(format!("{m}x{n}x{k}")), &(), |bch, _| {
            bch.iter(|| gemm(m, n, k, &a, Op::N, &b, Op::T, 0.0, &mut out))
        });
    }
    g.finish();
}

/// One thread, as each row shard of the recurrence runs. The ceiling: a 512³ cube on the
/// `gemm` crate (`reference`, AVX2 in its stable build) and on the packed kernel (B packed per
/// call). Then the shard's step (nb, H)·(H, H) for the shards of workloads A/C (B=64),
/// B (B=256), D (B=32) and E (B=128) on 2 threads: the `gemm` crate (re-packing W_hh per call,
/// then the activation) against the packed kernel with W_hh packed once (activation fused).
fn bench_recurrent_step(c: &mut Criterion) {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut g = c.benchmark_group("cpu_recurrent_step");
    g.sample_size(20);
    let kernel = Kernel::best();
    let cube = 512;
    let a = vec![0.5f32; cube * cube];
    let mut out = vec![0f32; cube * cube];
    g.throughput(Throughput::Elements((2 * cube * cube * cube) as u64));
    for k in [Kernel::Reference, kernel] {
        g.bench_function(format!("gemm_{k:?}_{cube}x{cube}x{cube}"), |bch| {
            one.install(|| bch.iter(|| gemm_with(k, cube, cube, cube, &a, Op::N, &a, Op::T, 0.0, &mut out)))
        });
    }
    for (nb, h) in [(32, 256), (128, 512), (16, 128), (64, 128)] {
        let w: Vec<f32> = (0..h * h).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
        let prev = vec![0.1f32; nb * h];
        let mut now = vec![0.2f32; nb * h];
        g.throughput(Throughput::Elements((2 * nb * h * h) as u64));
        g.bench_function(format!("gemm_Reference_{nb}x{h}x{h}"), |bch| {
            one.install(|| {
                bch.iter(|| {
                    gemm_with(Kernel::Reference, nb, h, h, &prev, Op::N, &w, Op::T, 1.0, &mut now);
                    activate(Activation::Tanh, &mut now);
                })
            })
        });
        let mut packed = PackedW::default();
        packed.pack(kernel, &w, h, Side::Forward);
        g.bench_function(format!("packed_{kernel:?}_{nb}x{h}x{h}"), |bch| {
            bch.iter(|| step(&packed, Some(&prev), &mut now, Epilogue::Activate(Activation::Tanh)))
        });
    }
    g.finish();
}

fn bench_train_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_train_step");
    g.sample_size(10);
    let mut a = ModelConfig::char_lm(65, 256, 1);
    a.input = Input::Tokens {
        vocab: 65,
        embed: Some(256),
    };
    let e = ModelConfig {
        input: Input::Dense { size: 8 },
        hidden: 128,
        output: 1,
        head: Head::Linear,
        seq: SeqShape::ManyToMany,
        ..ModelConfig::char_lm(2, 128, 1)
    };
    for (name, cfg, b, t) in [("A_charlm_H256_E256", a, 64, 64), ("E_dense_H128", e, 128, 100)] {
        let layout = ParamLayout::new(&cfg);
        let mut engine = CpuEngine::new(
            cfg,
            OptimConfig::new(OptimKind::Sgd { momentum: 0.0 }, 1e-3),
            layout.init(&cfg, 1),
        )
        .unwrap();
        let batch = random_batch(&cfg, b, t, false, 2);
        g.throughput(Throughput::Elements((b * t) as u64)); // tokens
        g.bench_function(name, |bch| bch.iter(|| engine.train_step(&batch, true).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench_gemm, bench_recurrent_step, bench_train_step);
criterion_main!(benches);
