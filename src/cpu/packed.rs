//! The recurrent product of the f32 path, with W_hh packed once per training step.
//!
//! Every step of the recurrence multiplies a shard's rows (nb, H) by the same (H, H) matrix:
//! forward h_{t-1} · W_hh^T, backward dz_{t+1} · W_hh. A general GEMM re-packs that matrix on
//! every call, T times per layer and direction. Here it is packed once into column panels of
//! NR columns (zero-padded past H), and a register-tiled micro-kernel runs all T steps against
//! the packed copy. The activation (forward) or f'(h) (backward) is applied in the tile's
//! write-back, as the GPU step kernels do, so a step reads and writes its rows once.
//! `product` is the general form: the other f32 products (`matmul::gemm`) run on it too.
//!
//! Determinism: each output element is one FMA chain over k = 0..K in order, from zero, then
//! added to the pre-activation (or the incoming gradient). Rows never mix, so the bits depend
//! neither on the tile a row falls into nor on the shard; and the AVX-512, AVX2 and portable
//! kernels perform the same IEEE operations in the same order, so they agree bit for bit.

use super::act::{activate, activation_grad};
use super::simd;
use super::tile::{copy_short, write_back, MAX_TILE};
pub use super::tile::{Epilogue, Lhs};
use std::sync::OnceLock;

/// Which code runs the f32 path's products (the recurrent steps and `matmul::gemm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `gemm` crate per step, then the activation: the f64 path, and x86 CPUs without FMA
    /// (where `f32::mul_add` is a libm call).
    Reference,
    /// plain Rust on `f32::mul_add`: non-x86 targets, and the tests
    Portable,
    /// AVX2 + FMA, 6×16 register tile
    Avx2,
    /// AVX-512F, 8×32 register tile
    Avx512,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Reference | Kernel::Portable => true,
            Kernel::Avx2 => simd::has_avx2(),
            Kernel::Avx512 => simd::has_avx512(),
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        if Kernel::Avx512.available() {
            Kernel::Avx512
        } else if Kernel::Avx2.available() {
            Kernel::Avx2
        } else if cfg!(target_arch = "x86_64") {
            Kernel::Reference
        } else {
            Kernel::Portable
        }
    }

    /// What the f32 path uses: `detect()`, unless the environment variable WGRNN_CPU_KERNEL
    /// names another available kernel (reference | portable | avx2 | avx512), so that a whole
    /// test run can exercise the fallbacks on a machine that has the wide kernels.
    pub fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            let forced = std::env::var("WGRNN_CPU_KERNEL").ok().and_then(|v| Kernel::parse(&v));
            forced.filter(|k| k.available()).unwrap_or_else(Kernel::detect)
        })
    }

    pub fn parse(name: &str) -> Option<Kernel> {
        match name {
            "reference" => Some(Kernel::Reference),
            "portable" => Some(Kernel::Portable),
            "avx2" => Some(Kernel::Avx2),
            "avx512" => Some(Kernel::Avx512),
            _ => None,
        }
    }

    /// Rows per micro-tile.
    pub fn mr(self) -> usize {
        match self {
            Kernel::Avx512 => simd::AVX512_MR,
            Kernel::Avx2 => simd::AVX2_MR,
            Kernel::Reference | Kernel::Portable => PORTABLE_MR,
        }
    }

    /// Columns per packed panel (the micro-tile's width).
    fn nr(self) -> usize {
        match self {
            Kernel::Avx512 => simd::AVX512_NR,
            Kernel::Avx2 => simd::AVX2_NR,
            Kernel::Reference | Kernel::Portable => PORTABLE_NR,
        }
    }
}

const PORTABLE_MR: usize = 4;
const PORTABLE_NR: usize = 16;

/// B (K, N) in column panels for one kernel: panel p holds, for k = 0..K, the NR values
/// B[k, p·NR .. p·NR + NR] side by side, zero past column N. Reused from step to step.
#[derive(Clone, Debug, Default)]
pub struct PackedW {
    kernel: Option<Kernel>,
    k: usize,
    n: usize,
    nr: usize,
    /// (ceil(N/NR), K, NR) from `off`; over-allocated so the panels start 64-byte aligned
    buf: Vec<f32>,
    off: usize,
}

/// Which product a step runs: `op(W)` is W^T in the forward sweep and W in the backward one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// B = W^T: h_{t-1} · W_hh^T
    Forward,
    /// B = W: dz_{t+1} · W_hh
    Backward,
}

impl PackedW {
    /// Packs `w` (H, H) for `kernel` (not `Reference`, which runs unpacked).
    pub fn pack(&mut self, kernel: Kernel, w: &[f32], h: usize, side: Side) {
        assert_eq!(w.len(), h * h, "PackedW::pack: W_hh is (H, H)");
        match side {
            Side::Forward => self.pack_strided(kernel, w, h, h, 1, h),
            Side::Backward => self.pack_strided(kernel, w, h, h, h, 1),
        }
    }

    /// Packs B (K, N) with B[k, j] = b[k·rs + j·cs]. Each panel is written in the order
    /// that reads `b` contiguously.
    pub fn pack_strided(&mut self, kernel: Kernel, b: &[f32], k: usize, n: usize, rs: usize, cs: usize) {
        assert!(
            kernel != Kernel::Reference,
            "PackedW::pack: the reference kernel is unpacked"
        );
        assert!(
            k == 0 || n == 0 || (k - 1) * rs + (n - 1) * cs < b.len(),
            "PackedW::pack: B is shorter than its strides reach"
        );
        let nr = kernel.nr();
        let len = n.div_ceil(nr) * k * nr;
        // Every element is written below (padding included): no need to zero the buffer.
        self.buf.resize(len + 16, 0.0);
        self.off = self.buf.as_ptr().align_offset(64).min(16);
        let dst = &mut self.buf[self.off..self.off + len]; // (ceil(N/NR), K, NR)
        for (p, panel) in dst.chunks_exact_mut(k * nr).enumerate() {
            let (j0, ncols) = (p * nr, nr.min(n - p * nr));
            if ncols < nr {
                panel.fill(0.0);
            }
            if cs == 1 {
                for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
                    copy_short(&mut row[..ncols], &b[kk * rs + j0..kk * rs + j0 + ncols]);
                }
            } else {
                for jj in 0..ncols {
                    let col = &b[(j0 + jj) * cs..];
                    for kk in 0..k {
                        panel[kk * nr + jj] = col[kk * rs];
                    }
                }
            }
        }
        self.kernel = Some(kernel);
        (self.k, self.n, self.nr) = (k, n, nr);
    }

    pub fn kernel(&self) -> Option<Kernel> {
        self.kernel
    }

    /// (ceil(N/NR), K, NR)
    fn panels(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.n.div_ceil(self.nr) * self.k * self.nr]
    }
}

/// One recurrent step on a shard of nb rows: c (nb, H) = epilogue(c + a (nb, H) · B (H, H)),
/// B packed in `w`. With `a = None` there is no product (the last backward step): c = epilogue(c).
pub fn step(w: &PackedW, a: Option<&[f32]>, c: &mut [f32], epi: Epilogue) {
    assert_eq!(w.k, w.n, "recurrent step: W_hh is square");
    match a {
        Some(a) => product(w, Lhs::Rows(a), c, epi),
        None => match epi {
            Epilogue::Store | Epilogue::Add => {}
            Epilogue::Activate(act) => activate(act, c),
            Epilogue::Grad(act, hs) => {
                assert_eq!(hs.len(), c.len(), "recurrent step: h is (nb, H)");
                for (v, &hv) in c.iter_mut().zip(hs) {
                    *v *= activation_grad(act, hv);
                }
            }
        },
    }
}

/// c (m, N) = epilogue(a (m, K) · B (K, N)), B packed in `w`, c dense row-major.
pub fn product(w: &PackedW, a: Lhs, c: &mut [f32], epi: Epilogue) {
    let (k, n) = (w.k, w.n);
    let kernel = w.kernel.expect("packed product: B is not packed");
    assert!(n > 0 && c.len().is_multiple_of(n), "packed product: c is (m, N)");
    let m = c.len() / n;
    match a {
        Lhs::Rows(a) => assert_eq!(a.len(), m * k, "packed product: a is (m, K)"),
        Lhs::Cols(a, ld) => assert!(
            ld >= m && (k == 0 || a.len() >= (k - 1) * ld + m),
            "packed product: a is (K, ld ≥ m)"
        ),
    }
    if let Epilogue::Grad(_, hs) = epi {
        assert_eq!(hs.len(), m * n, "packed product: h is (m, N)");
    }
    if k == 0 {
        // An empty sum: every kernel's accumulators stay zero.
        let zero = [0.0; MAX_TILE];
        for i in 0..m {
            for j0 in (0..n).step_by(MAX_TILE) {
                write_back(epi, c, i, j0, (n - j0).min(MAX_TILE), &zero, 1, MAX_TILE, n);
            }
        }
        return;
    }
    match kernel {
        Kernel::Reference => unreachable!("PackedW::pack refuses the reference kernel"),
        Kernel::Portable => portable_product(w.panels(), k, n, a, c, epi),
        Kernel::Avx2 => {
            assert!(simd::has_avx2(), "packed product: this CPU has no AVX2/FMA");
            // SAFETY: AVX2 and FMA are present (checked above); the operand lengths match
            // the shapes (checked above and by `panels`), which is all the kernel relies on.
            unsafe { simd::avx2_product(w.panels(), k, n, a, c, epi) }
        }
        Kernel::Avx512 => {
            assert!(simd::has_avx512(), "packed product: this CPU has no AVX-512F");
            // SAFETY: as above, for AVX-512F.
            unsafe { simd::avx512_product(w.panels(), k, n, a, c, epi) }
        }
    }
}

/// The portable kernel: the same tiling and FMA order as the SIMD ones, in plain Rust.
fn portable_product(panels: &[f32], k: usize, n: usize, a: Lhs, c: &mut [f32], epi: Epilogue) {
    let m = c.len() / n;
    let nr = PORTABLE_NR;
    // A[i, kk] for either layout
    let a_at = |i: usize, kk: usize| match a {
        Lhs::Rows(a) => a[i * k + kk],
        Lhs::Cols(a, ld) => a[kk * ld + i],
    };
    let mut acc = [0.0f32; MAX_TILE];
    for (p, panel) in panels.chunks_exact(k * nr).enumerate() {
        let j0 = p * nr;
        let ncols = nr.min(n - j0);
        for i0 in (0..m).step_by(PORTABLE_MR) {
            let rows = PORTABLE_MR.min(m - i0);
            acc[..rows * nr].fill(0.0);
            for (kk, b_row) in panel.chunks_exact(nr).enumerate() {
                for r in 0..rows {
                    let av = a_at(i0 + r, kk);
                    for (s, &bv) in acc[r * nr..(r + 1) * nr].iter_mut().zip(b_row) {
                        *s = av.mul_add(bv, *s);
                    }
                }
            }
            write_back(epi, c, i0, j0, ncols, &acc, rows, nr, n);
        }
    }
}
