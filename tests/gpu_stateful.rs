//! Stateful training on the GPU (`train_step_carried`, truncated BPTT over consecutive
//! windows): the final state of a step becomes the next step's initial state on the device,
//! without a read-back, and the run matches the CPU engine's within SPEC §5: whole batches,
//! batches split into chunks, and carried states whose batch shape is evicted in between.

use std::sync::{Arc, OnceLock};

use wgrnn::compare;
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, Clip, CpuEngine, Engine, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout};

fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// Two layers with an embedding: the carried state has more than one layer.
fn lm() -> ModelConfig {
    ModelConfig {
        input: Input::Tokens {
            vocab: 11,
            embed: Some(6),
        },
        ..ModelConfig::char_lm(11, 13, 2)
    }
}

fn adam() -> OptimConfig {
    let mut opt = OptimConfig::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.02,
    );
    opt.clip = Clip {
        norm: Some(0.5),
        value: None,
    };
    opt
}

fn engines(cfg: &ModelConfig, opt: OptimConfig) -> (CpuEngine, GpuEngine) {
    let p = ParamLayout::new(cfg).init(cfg, 7);
    let cpu = CpuEngine::new(*cfg, opt, p.clone()).unwrap();
    let gpu = GpuEngine::new(ctx(), *cfg, opt, p).unwrap();
    (cpu, gpu)
}

/// Asserts the final states and the weights of both engines agree.
fn check_end(case: &str, cpu: &mut CpuEngine, gpu: &mut GpuEngine) {
    let d = compare::tensor("last_state", &gpu.last_state().unwrap(), &cpu.last_state().unwrap());
    assert!(d.ok, "{case}: {d}");
    let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
    for d in compare::buffer("weights", cpu.layout(), &pg, &pc) {
        assert!(d.ok, "{case}: {d}");
    }
}

/// Runs `steps` carried windows of (B, T) on both engines after one plain first step,
/// comparing every loss; `between` runs on the GPU engine (and the CPU one) before each
/// carried step.
fn stateful_run(
    case: &str,
    cpu: &mut CpuEngine,
    gpu: &mut GpuEngine,
    (b, t): (usize, usize),
    steps: u64,
    mut between: impl FnMut(&mut CpuEngine, &mut GpuEngine),
) {
    let cfg = *cpu.config();
    let first = random_batch(&cfg, b, t, true, 100);
    let (lc, lg) = (
        cpu.train_step(&first, true).unwrap(),
        gpu.train_step(&first, true).unwrap(),
    );
    let d = compare::loss("loss", lg.unwrap(), lc.unwrap());
    assert!(d.ok, "{case} first step: {d}");
    for s in 0..steps {
        between(cpu, gpu);
        let batch = random_batch(&cfg, b, t, false, 200 + s);
        let lc = cpu.train_step_carried(&batch, true).unwrap().unwrap();
        let lg = gpu.train_step_carried(&batch, true).unwrap().unwrap();
        let d = compare::loss("loss", lg, lc);
        assert!(d.ok, "{case} carried step {s}: {d}");
    }
    check_end(case, cpu, gpu);
}

/// Carried steps that ask for no loss read nothing back: the state stays on the device.
#[test]
fn carried_steps_read_nothing_back() {
    let cfg = lm();
    let (_, mut gpu) = engines(&cfg, adam());
    gpu.train_step(&random_batch(&cfg, 4, 5, true, 1), false).unwrap();
    // the same with the batch split into chunks of 2 (the carried state spans them)
    for limit in [None, Some((6 * cfg.hidden * 4 * 2) as u64)] {
        gpu.set_binding_limit(limit).unwrap();
        gpu.train_step(&random_batch(&cfg, 4, 5, true, 2), false).unwrap();
        let before = gpu.readbacks();
        for s in 0..4 {
            gpu.train_step_carried(&random_batch(&cfg, 4, 5, false, 10 + s), false)
                .unwrap();
        }
        assert_eq!(gpu.readbacks(), before, "limit {limit:?}: carried steps read back");
        // the state is still there to read
        assert_eq!(gpu.last_state().unwrap().len(), cfg.layers * 4 * cfg.hidden);
        assert_eq!(gpu.readbacks(), before + 1);
    }
}

#[test]
fn carried_training_matches_cpu() {
    for cfg in [lm(), ModelConfig::char_lm(5, 33, 1)] {
        let (mut cpu, mut gpu) = engines(&cfg, adam());
        stateful_run(&format!("{cfg}"), &mut cpu, &mut gpu, (3, 4), 5, |_, _| {});
    }
}

/// B = 7 in chunks of 3, 3 and 1: each chunk starts from its slice of the carried state.
#[test]
fn carried_training_of_a_split_batch_matches_cpu() {
    let cfg = lm();
    let (b, t) = (7, 5);
    let (mut cpu, mut gpu) = engines(&cfg, adam());
    gpu.set_binding_limit(Some(((t + 1) * cfg.hidden * 4 * 3) as u64))
        .unwrap();
    let whole = {
        let (_, mut g) = engines(&cfg, adam());
        g.dispatches_per_step(b, t).unwrap()
    };
    assert!(gpu.dispatches_per_step(b, t).unwrap() > 2 * whole, "not split");
    stateful_run("split", &mut cpu, &mut gpu, (b, t), 4, |_, _| {});
}

/// Evaluation batches of other shapes between the steps evict the training shape from the
/// cache: the carried state is read back then and continues from the host; a changed
/// binding limit drops every shape the same way.
#[test]
fn carried_state_survives_eviction_and_limit_changes() {
    let cfg = lm();
    let (mut cpu, mut gpu) = engines(&cfg, adam());
    let mut k = 0u64;
    stateful_run("evicted", &mut cpu, &mut gpu, (3, 4), 6, |cpu, gpu| {
        k += 1;
        match k % 3 {
            0 => {
                for (b, t) in [(2, 3), (5, 2)] {
                    let eval = random_batch(&cfg, b, t, false, 50 + k);
                    let (oc, og) = (cpu.forward(&eval).unwrap(), gpu.forward(&eval).unwrap());
                    let d = compare::loss("eval loss", og.loss, oc.loss);
                    assert!(d.ok, "eval ({b}, {t}): {d}");
                }
            }
            1 => gpu.set_binding_limit(None).unwrap(),
            _ => {
                // another T, same B: the state carries across window lengths
                let batch = random_batch(&cfg, 3, 6, false, 70 + k);
                let lc = cpu.train_step_carried(&batch, true).unwrap().unwrap();
                let lg = gpu.train_step_carried(&batch, true).unwrap().unwrap();
                let d = compare::loss("loss", lg, lc);
                assert!(d.ok, "T = 6 window: {d}");
            }
        }
    });
}

/// The device copy of the carried state is exact: carried steps give the same bits as steps
/// whose h0 is the state read back and uploaded again (the trait's default path).
#[test]
fn device_carry_equals_host_round_trip_bitwise() {
    let cfg = lm();
    let (_, mut on_device) = engines(&cfg, adam());
    let (_, mut round_trip) = engines(&cfg, adam());
    let first = random_batch(&cfg, 3, 4, true, 1);
    on_device.train_step(&first, false).unwrap();
    round_trip.train_step(&first, false).unwrap();
    for s in 0..4 {
        let mut batch = random_batch(&cfg, 3, 4, false, 20 + s);
        on_device.train_step_carried(&batch, false).unwrap();
        batch.h0 = Some(round_trip.last_state().unwrap());
        round_trip.train_step(&batch, false).unwrap();
    }
    assert_eq!(on_device.last_state().unwrap(), round_trip.last_state().unwrap());
    assert_eq!(on_device.params().unwrap(), round_trip.params().unwrap());
}
