//! GPU path: the matrix-product kernels (every one the adapter runs; GFLOP/s) and one
//! training step of the issue-3 workload (char-LM B=256, T=64, H=512, V=65). Slow on
//! lavapipe, hence the small sample sizes. WGRNN_BACKEND / WGRNN_ADAPTER pick the device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgrnn::gpu::buffers::{tensor, upload, Scale};
use wgrnn::gpu::kernels::{self, mat, Acc};
use wgrnn::gpu::program::{Op, Program};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, Engine, ModelConfig, OptimConfig, OptimKind, ParamLayout};

fn ctx() -> Arc<GpuContext> {
    GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter")
}

fn bench_matmul(c: &mut Criterion) {
    let ctx = ctx();
    let mut g = c.benchmark_group(format!("gpu_matmul {}", ctx.describe()));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    for n in [512usize, 1024] {
        let buf = |v: f32| {
            let b = tensor(&ctx, "bench", n * n, Scale::Model).unwrap();
            upload(&ctx, &b, 0, &vec![v; n * n]);
            b
        };
        let (a, b, out) = (buf(0.5), buf(0.25), buf(0.0));
        g.throughput(Throughput::Elements((2 * n * n * n) as u64)); // FLOPs: read "elem/s" as FLOP/s
        for kernel in ctx.kernels().unwrap().matmuls() {
            // C = A · B^T, the forward projection's layout
            let d = kernels::matmul(
                kernel.kernel(),
                mat(&out, 0, n, n),
                mat(&a, 0, n, n),
                mat(&b, 0, n, n).t(),
                Acc::Set,
            )
            .unwrap();
            let prog = Program::new(&ctx, &ctx.kernels().unwrap(), &[Op::Dispatch(d)]).unwrap();
            g.bench_with_input(BenchmarkId::new(kernel.to_string(), format!("{n}^3")), &(), |bch, _| {
                bch.iter(|| prog.run(&ctx).unwrap())
            });
        }
    }
    g.finish();
}

fn bench_train_step(c: &mut Criterion) {
    let ctx = ctx();
    let mut g = c.benchmark_group(format!("gpu_train_step {}", ctx.describe()));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(20));
    let (b, t) = (256, 64);
    let cfg = ModelConfig::char_lm(65, 512, 1);
    let layout = ParamLayout::new(&cfg);
    let opt = OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-3,
    );
    g.throughput(Throughput::Elements((b * t) as u64)); // tokens
                                                        // setup inside the closure, so a filter that skips this bench skips its slow setup too
    g.bench_function("charlm_B256_T64_H512_V65", |bch| {
        let mut engine = GpuEngine::new(ctx.clone(), cfg, opt, layout.init(&cfg, 1)).unwrap();
        let batch = random_batch(&cfg, b, t, false, 2);
        let start = Instant::now();
        engine.train_step(&batch, true).unwrap(); // allocation, programs, first run
        let first = start.elapsed();
        let start = Instant::now();
        engine.train_step(&batch, true).unwrap();
        eprintln!(
            "B={b} T={t} H=512 V=65: {} dispatches per step; first step {first:.2?}, second {:.2?}",
            engine.dispatches_per_step(b, t).unwrap(),
            start.elapsed()
        );
        // the loss read-back is the synchronisation point: one submission, one 4-byte read
        bch.iter(|| engine.train_step(&batch, true).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_train_step);
criterion_main!(benches);
