//! Pairs (issue 10): two matrix products sharing A's and C's buffers in one dispatch of a
//! tiled kernel give exactly the bits of the two run one after the other, on shapes that
//! fill no tile and with every transpose; training with a tiled kernel forced (so that the
//! schedule's pairs are fused) gives the bits of the default kernels and stays within SPEC §5
//! of the CPU; and the fused pairs keep a three-layer embedding model within issue 10's
//! 2·L + 16 dispatches per step.

use std::sync::{Arc, OnceLock};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgrnn::compare::cross_check;
use wgrnn::gpu::buffers::{tensor, upload, Scale, Staging};
use wgrnn::gpu::kernels::{self, mat, matmul_pair, Acc, Dispatch, Kernel, Mat};
use wgrnn::gpu::program::{Op, Program};
use wgrnn::gpu::{GpuContext, GpuEngine, GpuOptions};
use wgrnn::{random_batch, CpuEngine, Engine, Input, ModelConfig, OptimConfig, OptimKind, ParamLayout, Want};

const TILED: [Kernel; 3] = [Kernel::MatmulTile32, Kernel::MatmulTile64, Kernel::MatmulTile128];

fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

fn buf(data: &[f32]) -> wgpu::Buffer {
    let c = ctx();
    let b = tensor(&c, "test", data.len(), Scale::Model).unwrap();
    upload(&c, &b, 0, data);
    b
}

fn read(b: &wgpu::Buffer, len: usize) -> Vec<u32> {
    let c = ctx();
    let enc = c.device.create_command_encoder(&Default::default());
    let v = Staging::default().submit_and_read(&c, enc, &[(b, 0, len)]).unwrap();
    v[0].iter().map(|x| x.to_bits()).collect()
}

fn run(ops: &[Op]) {
    let c = ctx();
    Program::new(&c, &c.kernels().unwrap(), ops).unwrap().run(&c).unwrap();
}

/// One product of a pair: op(A) (m, k) at `a_off` of the shared A buffer, op(B) (k, n) at
/// `b_off` of its own B buffer, C (m, n) at `c_off` of the shared C buffer.
#[derive(Clone, Copy)]
struct Prod {
    mnk: (usize, usize, usize),
    t: (bool, bool),
    offs: (usize, usize, usize),
    acc: Acc,
}

impl Prod {
    fn a<'a>(&self, buf: &'a wgpu::Buffer) -> Mat<'a> {
        let (m, _, k) = self.mnk;
        stored(buf, self.offs.0, (m, k), self.t.0)
    }

    fn b<'a>(&self, buf: &'a wgpu::Buffer) -> Mat<'a> {
        let (_, n, k) = self.mnk;
        stored(buf, self.offs.1, (k, n), self.t.1)
    }

    fn c<'a>(&self, buf: &'a wgpu::Buffer) -> Mat<'a> {
        let (m, n, _) = self.mnk;
        mat(buf, self.offs.2, m, n)
    }

    /// Floats of each buffer this product reaches (A, B, C)
    fn ends(&self) -> [usize; 3] {
        let (m, n, k) = self.mnk;
        [self.offs.0 + m * k, self.offs.1 + k * n, self.offs.2 + m * n]
    }
}

/// The logical (rows, cols) operand at `off`, stored transposed when `t`.
fn stored(b: &wgpu::Buffer, off: usize, (rows, cols): (usize, usize), t: bool) -> Mat<'_> {
    if t {
        mat(b, off, cols, rows).t()
    } else {
        mat(b, off, rows, cols)
    }
}

/// A pair's C buffer after the two products run one after the other and after the pair, on
/// `kernel`, from the same random contents; the first product has row sums when `rs`.
fn pair_vs_products(kernel: Kernel, first: Prod, second: Prod, rs: bool, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [ea1, eb1, ec1] = first.ends();
    let [ea2, eb2, ec2] = second.ends();
    let rs_off = ec1.max(ec2);
    let m1 = first.mnk.0;
    let c_len = rs_off + 2 * m1 + 3;
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (a, b1, b2) = (buf(&rand(ea1.max(ea2))), buf(&rand(eb1)), buf(&rand(eb2)));
    let c0 = rand(c_len);
    let c = buf(&c0);
    let d1 = match rs {
        true => kernels::matmul_row_sums(
            kernel,
            first.c(&c),
            first.a(&a),
            first.b(&b1),
            first.acc,
            (rs_off, rs_off + m1 + 1),
        ),
        false => kernels::matmul(kernel, first.c(&c), first.a(&a), first.b(&b1), first.acc),
    }
    .unwrap();
    let d2 = kernels::matmul(kernel, second.c(&c), second.a(&a), second.b(&b2), second.acc).unwrap();
    let pair = matmul_pair(kernel, &d1, &d2).unwrap().expect("the pair fits one grid");
    assert_eq!(pair.groups[2], 2);
    run(&[Op::Dispatch(d1), Op::Dispatch(d2)]);
    let apart = read(&c, c_len);
    upload(&ctx(), &c, 0, &c0);
    run(&[Op::Dispatch(pair)]);
    (apart, read(&c, c_len))
}

fn prod(mnk: (usize, usize, usize), t: (bool, bool), offs: (usize, usize, usize), acc: Acc) -> Prod {
    Prod { mnk, t, offs, acc }
}

#[test]
fn a_pair_gives_the_bits_of_its_two_products() {
    let (n, t) = (false, true);
    let (set, add) = (Acc::Set, Acc::Add);
    // (first, second, row sums on the first): the schedule's pairs (dz^T · h_prev with
    // dz^T · y_below or x, of another width and fewer steps; S^T · E with S · W_ih), the
    // other transposes, 1s, tiles that the second problem outgrows in each direction, and
    // vec4-aligned offsets and widths beside unaligned ones
    let cases = [
        (
            prod((37, 37, 45), (t, n), (0, 0, 0), set),
            prod((37, 19, 45), (t, n), (0, 1, 1369), set),
            true,
        ),
        (
            prod((64, 64, 48), (t, n), (0, 4, 0), add),
            prod((64, 32, 48), (t, n), (0, 8, 4096), add),
            true,
        ),
        (
            prod((37, 37, 45), (t, n), (3, 2, 5), add),
            prod((37, 5, 30), (t, n), (3, 0, 1400), set),
            true,
        ),
        (
            prod((37, 6, 13), (t, n), (1, 0, 0), set),
            prod((13, 6, 37), (n, n), (1, 3, 222), add),
            false,
        ),
        (
            prod((40, 8, 20), (t, n), (0, 0, 0), add),
            prod((20, 8, 40), (n, n), (0, 4, 320), add),
            false,
        ),
        (
            prod((1, 1, 1), (n, n), (0, 0, 0), set),
            prod((1, 1, 1), (n, t), (0, 0, 1), set),
            true,
        ),
        (
            prod((1, 5, 3), (n, t), (2, 1, 7), add),
            prod((1, 2, 3), (t, t), (0, 0, 0), set),
            true,
        ),
        (
            prod((130, 70, 33), (n, t), (0, 3, 0), set),
            prod((20, 150, 33), (t, t), (5, 0, 9100), add),
            true,
        ),
        (
            prod((33, 17, 9), (t, t), (4, 4, 0), set),
            prod((9, 140, 33), (n, t), (4, 8, 600), set),
            false,
        ),
    ];
    for kernel in TILED {
        for (i, &(first, second, rs)) in cases.iter().enumerate() {
            let (apart, paired) = pair_vs_products(kernel, first, second, rs, i as u64);
            assert!(
                apart == paired,
                "{kernel:?}, case {i}: the pair differs from its products"
            );
        }
    }
}

#[test]
fn pairs_that_cannot_share_a_dispatch_are_refused() {
    let x = buf(&[0.0; 64]);
    let y = buf(&[0.0; 64]);
    let c = buf(&[0.0; 64]);
    let k = Kernel::MatmulTile32;
    let mm = |c_off: usize, a: &wgpu::Buffer| {
        kernels::matmul(k, mat(&c, c_off, 2, 2), mat(a, 0, 2, 2), mat(&x, 0, 2, 2), Acc::Set).unwrap()
    };
    let sums = kernels::matmul_row_sums(
        k,
        mat(&c, 8, 2, 2),
        mat(&x, 0, 2, 2),
        mat(&y, 0, 2, 2),
        Acc::Set,
        (20, 30),
    );
    let sums = sums.unwrap();
    let refused = |a: &Dispatch, b: &Dispatch, kernel: Kernel| matmul_pair(kernel, a, b).is_err();
    assert!(!refused(&mm(0, &x), &mm(4, &x), k));
    assert!(refused(&mm(0, &x), &mm(4, &y), k), "two A buffers");
    assert!(refused(&mm(0, &x), &mm(2, &x), k), "overlapping outputs");
    assert!(refused(&mm(0, &x), &sums, k), "row sums on the second");
    assert!(refused(&sums, &mm(20, &x), k), "the second over the first's row sums");
    assert!(
        refused(&mm(0, &x), &mm(4, &x), Kernel::MatmulBlocked),
        "not a tiled kernel"
    );
    // row tiles past the y limit spill into z, which a pair uses for the problem
    let tall = 65535 * 32 + 1;
    let spill = kernels::matmul(k, mat(&c, 0, tall, 1), mat(&x, 0, tall, 1), mat(&y, 0, 1, 1), Acc::Set).unwrap();
    assert!(matmul_pair(k, &spill, &mm(tall, &x)).unwrap().is_none());
}

/// A three-layer embedding model whose batches take the token-table path (V ≤ T·B), a dense
/// two-layer many-to-one model, and a bidirectional two-layer one with an embedding.
fn models() -> [(ModelConfig, usize, usize); 3] {
    let mut lm = ModelConfig::char_lm(13, 21, 3);
    lm.input = Input::Tokens {
        vocab: 13,
        embed: Some(6),
    };
    let mut dense = ModelConfig::char_lm(1, 19, 2);
    dense.input = Input::Dense { size: 5 };
    dense.output = 3;
    dense.head = wgrnn::Head::Linear;
    dense.seq = wgrnn::SeqShape::ManyToOne;
    let mut bi = lm;
    bi.layers = 2;
    bi.hidden = 9;
    bi.bidirectional = true;
    [(lm, 5, 7), (dense, 9, 4), (bi, 4, 6)]
}

fn opt() -> OptimConfig {
    OptimConfig::new(OptimKind::Sgd { momentum: 0.9 }, 0.05)
}

/// An engine with `matmul` forced for every product (the default kernels when None) and the
/// whole-sequence recurrence when `seq`.
fn engine(cfg: ModelConfig, params: Vec<f32>, matmul: Option<&str>, seq: bool) -> GpuEngine {
    let forced = GpuContext::new(&GpuOptions {
        matmul: matmul.map(String::from),
        recurrence: seq.then(|| "seq".to_string()),
        ..GpuOptions::from_env()
    })
    .unwrap();
    GpuEngine::new(forced, cfg, opt(), params).unwrap()
}

/// Gradients (with dh0) and the weights after three steps, as bits.
fn trained(e: &mut GpuEngine, cfg: &ModelConfig, b: usize, t: usize) -> (Vec<u32>, Vec<u32>) {
    let batches: Vec<_> = (0..3).map(|k| random_batch(cfg, b, t, false, 20 + k)).collect();
    let want = Want { dx: false, dh0: true };
    let (_, g) = e.loss_and_grads(&batches[0], want).unwrap();
    let mut grads: Vec<u32> = g.params.iter().map(|x| x.to_bits()).collect();
    grads.extend(g.dh0.unwrap_or_default().iter().map(|x| x.to_bits()));
    for batch in &batches {
        e.train_step(batch, false).unwrap();
    }
    (grads, e.params().unwrap().iter().map(|x| x.to_bits()).collect())
}

#[test]
fn training_with_fused_pairs_matches_the_default_kernels_and_the_cpu() {
    // lavapipe's default kernel runs no pairs; a default that does fuses as many
    let default_fuses = kernels::runs_pairs(ctx().kernels().unwrap().matmul);
    for (cfg, b, t) in models() {
        let params = ParamLayout::new(&cfg).init(&cfg, 5);
        let mut default = engine(cfg, params.clone(), None, false);
        let want = trained(&mut default, &cfg, b, t);
        let unfused = default.dispatches_per_step(b, t).unwrap();
        for k in ["tile32", "tile64", "tile128"] {
            let mut gpu = engine(cfg, params.clone(), Some(k), false);
            assert!(
                trained(&mut gpu, &cfg, b, t) == want,
                "{cfg} on {k}: bits differ from the default kernels"
            );
            let fused = gpu.dispatches_per_step(b, t).unwrap();
            assert!(
                fused < unfused || default_fuses && fused == unfused,
                "{cfg} on {k}: {fused} vs {unfused} dispatches"
            );
            let mut gpu = engine(cfg, params.clone(), Some(k), false);
            let mut cpu = CpuEngine::new(cfg, opt(), params.clone()).unwrap();
            let batches: Vec<_> = (0..2).map(|i| random_batch(&cfg, b, t, false, 30 + i)).collect();
            for d in cross_check(&mut cpu, &mut gpu, &batches).unwrap() {
                assert!(d.ok, "{cfg} on {k}: {d}");
            }
        }
    }
}

/// Issue 10's bound on the whole-sequence path for workload C's shape (V = 65, three layers
/// of an embedding model, the token-table path): each layer's pair is one dispatch.
#[test]
fn a_three_layer_embedding_model_meets_the_dispatch_bound_with_pairs() {
    let cfg = ModelConfig {
        input: Input::Tokens {
            vocab: 65,
            embed: Some(16),
        },
        ..ModelConfig::char_lm(65, 16, 3)
    };
    let params = ParamLayout::new(&cfg).init(&cfg, 1);
    let bound = 2 * cfg.layers + 16;
    for k in ["tile32", "tile64", "tile128"] {
        let mut e = engine(cfg, params.clone(), Some(k), true);
        for (b, t) in [(65, 1), (16, 8)] {
            let n = e.dispatches_per_step(b, t).unwrap();
            assert!(n <= bound, "{k}, B={b} T={t}: {n} dispatches per step, bound {bound}");
        }
    }
}
