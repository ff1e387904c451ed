//! The GPU path's token tables (an embedding's input projection as the (V, H) table
//! E·W_ih^T, gathered per token; its gradients through the per-token sums of dz) against
//! the CPU reference (SPEC §5), beside the embedded-inputs path it falls back to when the
//! vocabulary outnumbers the gathered rows (V > T_in·B) or dx is asked for.

use std::sync::{Arc, OnceLock};

use wgrnn::compare;
use wgrnn::gpu::kernels::{Recurrence, RecurrencePlan, SEQ_BLOCK};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{
    random_batch, Activation, Batch, CpuEngine, Dropout, Engine, Head, Init, Input, ModelConfig, OptimConfig,
    OptimKind, ParamLayout, Reduction, SeqShape, Want,
};

/// A missing adapter fails the test: CI installs lavapipe, so there is always one.
fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

fn adam() -> OptimConfig {
    let kind = OptimKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    OptimConfig::new(kind, 0.01)
}

fn sgd() -> OptimConfig {
    OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.1)
}

/// An embedding model of vocabulary `v`, embedding width E = 3, H = 5.
fn model(v: usize, seq: SeqShape, layers: usize, bidirectional: bool, dropout: f32) -> ModelConfig {
    ModelConfig {
        input: Input::Tokens {
            vocab: v,
            embed: Some(3),
        },
        hidden: 5,
        layers,
        activation: Activation::Tanh,
        output: 4,
        head: Head::Softmax,
        reduction: Reduction::Mean,
        seq,
        init: Init::Default,
        bias: true,
        head_bias: true,
        bidirectional,
        dropout: Dropout { p: dropout, seed: 11 },
        loss: Default::default(),
    }
}

fn engines(cfg: &ModelConfig, opt: OptimConfig, rec: Recurrence) -> (CpuEngine, GpuEngine) {
    let p = ParamLayout::new(cfg).init(cfg, 3);
    let cpu = CpuEngine::new(*cfg, opt, p.clone()).unwrap();
    let mut gpu = GpuEngine::new(ctx(), *cfg, opt, p).unwrap();
    let tile = ctx().kernels().unwrap().seq_tile;
    let plan = RecurrencePlan {
        kind: rec,
        block: SEQ_BLOCK,
        tile,
    };
    gpu.set_recurrence(plan).unwrap();
    (cpu, gpu)
}

/// A batch with ragged lengths, with initial states for even seeds.
fn batch(cfg: &ModelConfig, b: usize, t: usize, seed: u64) -> Batch<f32> {
    let mut batch = random_batch(cfg, b, t, seed.is_multiple_of(2), seed);
    batch.lengths = Some((0..b).map(|i| 1 + ((i * 5 + seed as usize) % t) as u32).collect());
    batch
}

fn check_buffer(case: &str, what: &str, layout: &ParamLayout, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), layout.total, "{case}: {what} length");
    for d in compare::buffer(what, layout, gpu, cpu) {
        assert!(d.ok, "{case}: {d}");
    }
}

fn check_loss(case: &str, gpu: f32, cpu: f32) {
    let d = compare::loss("loss", gpu, cpu);
    assert!(d.ok, "{case}: gpu {gpu} cpu {cpu} {d}");
}

/// loss_and_grads without dx (the token tables where V ≤ T_in·B) and with dx (the
/// embedded inputs), forward outputs, then `steps` training steps: losses and weights.
fn compare_run(cfg: &ModelConfig, opt: OptimConfig, rec: Recurrence, (b, t): (usize, usize), steps: u64) {
    let case = format!("{cfg} B={b} T={t} {rec:?} {:?}", opt.kind);
    let (mut cpu, mut gpu) = engines(cfg, opt, rec);
    let first = batch(cfg, b, t, 1);
    for dx in [false, true] {
        let want = Want {
            dx,
            dh0: first.h0.is_some(),
        };
        let (lc, gc) = cpu.loss_and_grads(&first, want).unwrap();
        let (lg, gg) = gpu.loss_and_grads(&first, want).unwrap();
        check_loss(&case, lg, lc);
        check_buffer(&case, "grad", cpu.layout(), &gg.params, &gc.params);
        for (what, g, c) in [("dx", &gg.dx, &gc.dx), ("dh0", &gg.dh0, &gc.dh0)] {
            assert_eq!(g.is_some(), c.is_some(), "{case}: {what}");
            if let (Some(g), Some(c)) = (g, c) {
                let d = compare::tensor(what, g, c);
                assert!(d.ok, "{case}: {d}");
            }
        }
    }
    let (oc, og) = (cpu.forward(&first).unwrap(), gpu.forward(&first).unwrap());
    check_loss(&case, og.loss, oc.loss);
    let d = compare::tensor("outputs", &og.out, &oc.out);
    assert!(d.ok, "{case}: {d}");
    for s in 0..steps {
        let next = batch(cfg, b, t, 10 + s);
        let lc = cpu.train_step(&next, true).unwrap().unwrap();
        let lg = gpu.train_step(&next, true).unwrap().unwrap();
        check_loss(&format!("{case} step {s}"), lg, lc);
    }
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    check_buffer(&case, "weights", cpu.layout(), &pg, &pc);
}

/// (V, B, T): the token tables (V ≤ T_in·B, one-to-many's T_in = 1 included) and the
/// embedded inputs (V > T_in·B).
fn sizes(seq: SeqShape, table: bool) -> (usize, (usize, usize)) {
    match (seq, table) {
        (SeqShape::OneToMany, true) => (5, (6, 3)),
        (SeqShape::OneToMany, false) => (7, (3, 4)),
        (_, true) => (5, (3, 4)),
        (_, false) => (20, (2, 3)),
    }
}

#[test]
fn every_variant_matches_cpu_on_both_paths() {
    let mut n = 0;
    for rec in [Recurrence::Step, Recurrence::Seq] {
        for seq in [SeqShape::ManyToMany, SeqShape::ManyToOne, SeqShape::OneToMany] {
            for (layers, bidirectional, dropout) in [(1, false, 0.0), (1, true, 0.0), (2, false, 0.3), (2, true, 0.3)] {
                for table in [true, false] {
                    let (v, shape) = sizes(seq, table);
                    let cfg = model(v, seq, layers, bidirectional, dropout);
                    let opt = if n % 2 == 0 { adam() } else { sgd() };
                    compare_run(&cfg, opt, rec, shape, 3);
                    n += 1;
                }
            }
        }
    }
}

/// A batch split into chunks (as one too large for a storage binding is): the tables are
/// computed for the first chunk, the per-token sums per chunk, the gradients summed.
#[test]
fn split_batch_matches_cpu() {
    for rec in [Recurrence::Step, Recurrence::Seq] {
        for bidirectional in [false, true] {
            let cfg = model(5, SeqShape::ManyToMany, 2, bidirectional, 0.3);
            let (b, t) = (7, 4);
            let (mut cpu, mut gpu) = engines(&cfg, adam(), rec);
            let per_seq = ((cfg.dirs() * t + 1) * cfg.hidden * 4) as u64;
            // chunks of 3, 3 and 1 sequences: the last one has fewer rows than tokens
            gpu.set_binding_limit(Some(3 * per_seq)).unwrap();
            let case = format!("{cfg} split {rec:?}");
            for s in 0..3 {
                let next = batch(&cfg, b, t, 20 + s);
                let lc = cpu.train_step(&next, true).unwrap().unwrap();
                let lg = gpu.train_step(&next, true).unwrap().unwrap();
                check_loss(&format!("{case} step {s}"), lg, lc);
            }
            let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
            check_buffer(&case, "weights", cpu.layout(), &pg, &pc);
        }
    }
}

/// Same run twice, same bits: the per-token sums walk their rows in order.
#[test]
fn same_run_twice_gives_identical_bits() {
    let cfg = model(5, SeqShape::ManyToMany, 1, true, 0.0);
    let run = || {
        let (_, mut gpu) = engines(&cfg, sgd(), Recurrence::Step);
        let mut losses = Vec::new();
        for s in 0..3 {
            let next = batch(&cfg, 4, 5, 30 + s);
            losses.push(gpu.train_step(&next, true).unwrap().unwrap().to_bits());
        }
        let bits: Vec<u32> = gpu.params().unwrap().iter().map(|x| x.to_bits()).collect();
        (losses, bits)
    };
    assert_eq!(run(), run());
}

/// Which path runs, seen from the forward pass's launches: a one-hot model gathers W_ih's
/// columns with no input projection; the token tables add one product (the table), the
/// embedded inputs two launches (the gather and the product).
#[test]
fn the_table_path_runs_where_it_saves_work() {
    let one_hot = ModelConfig {
        input: Input::Tokens { vocab: 5, embed: None },
        ..model(5, SeqShape::ManyToMany, 1, false, 0.0)
    };
    let launches = |cfg: &ModelConfig, b: usize, t: usize| {
        let (_, mut gpu) = engines(cfg, sgd(), Recurrence::Step);
        gpu.dispatches_per_forward(b, t).unwrap()
    };
    let base = launches(&one_hot, 3, 4);
    assert_eq!(launches(&model(5, SeqShape::ManyToMany, 1, false, 0.0), 3, 4), base + 1);
    assert_eq!(
        launches(&model(13, SeqShape::ManyToMany, 1, false, 0.0), 3, 4),
        base + 2
    );
}
