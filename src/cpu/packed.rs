//! The recurrent product of the f32 path, with W_hh packed once per training step.
//!
//! Every step of the recurrence multiplies a shard's rows (nb, H) by the same (H, H) matrix:
//! forward h_{t-1} · W_hh^T, backward dz_{t+1} · W_hh. A general GEMM re-packs that matrix on
//! every call, T times per layer and direction. Here it is packed once into column panels of
//! NR columns (zero-padded past H), and a register-tiled micro-kernel runs all T steps against
//! the packed copy. The activation (forward) or f'(h) (backward) is applied in the tile's
//! write-back, as the GPU step kernels do, so a step reads and writes its rows once.
//!
//! Determinism: each output element is one FMA chain over k = 0..H in order, from zero, then
//! added to the pre-activation (or the incoming gradient). Rows never mix, so the bits depend
//! neither on the tile a row falls into nor on the shard; and the AVX-512, AVX2 and portable
//! kernels perform the same IEEE operations in the same order, so they agree bit for bit.

use super::forward::{activate, activation_grad};
use super::loss::sigmoid;
use super::simd;
use crate::config::Activation;
use crate::real::tanh_f32;
use std::sync::OnceLock;

/// Which code runs the per-step recurrent product of the f32 path.
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
/// Largest MR·NR of any kernel: the size of the write-back buffer.
pub(crate) const MAX_TILE: usize = 8 * 32;

/// B (H, H) in column panels for one kernel: panel p holds, for k = 0..H, the NR values
/// B[k, p·NR .. p·NR + NR] side by side, zero past column H. Reused from step to step.
#[derive(Clone, Debug, Default)]
pub struct PackedW {
    kernel: Option<Kernel>,
    h: usize,
    nr: usize,
    /// (ceil(H/NR), H, NR) from `off`; over-allocated so the panels start 64-byte aligned
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
        assert!(
            kernel != Kernel::Reference,
            "PackedW::pack: the reference kernel is unpacked"
        );
        assert_eq!(w.len(), h * h, "PackedW::pack: W_hh is (H, H)");
        let nr = kernel.nr();
        let panels = h.div_ceil(nr);
        let len = panels * h * nr;
        self.buf.clear();
        self.buf.resize(len + 16, 0.0);
        self.off = self.buf.as_ptr().align_offset(64).min(16);
        let dst = &mut self.buf[self.off..self.off + len]; // (panels, H, NR)
        for (p, panel) in dst.chunks_exact_mut(h * nr).enumerate() {
            for (k, row) in panel.chunks_exact_mut(nr).enumerate() {
                for (jj, v) in row.iter_mut().enumerate() {
                    let j = p * nr + jj;
                    if j < h {
                        *v = match side {
                            Side::Forward => w[j * h + k],
                            Side::Backward => w[k * h + j],
                        };
                    }
                }
            }
        }
        self.kernel = Some(kernel);
        self.h = h;
        self.nr = nr;
    }

    pub fn kernel(&self) -> Option<Kernel> {
        self.kernel
    }

    /// (panels, H, NR)
    fn panels(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.h.div_ceil(self.nr) * self.h * self.nr]
    }
}

/// What the write-back does with z = c + a·B for one element of c.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// c = f(z): the forward step, c holding the pre-activation (input projection + biases)
    Activate(Activation),
    /// c = z · f'(h): the backward step, c holding dh_t, `h` the states h_t (nb, H)
    Grad(Activation, &'a [f32]),
}

/// One recurrent step on a shard of nb rows: c (nb, H) = epilogue(c + a (nb, H) · B (H, H)),
/// B packed in `w`. With `a = None` there is no product (the last backward step): c = epilogue(c).
pub fn step(w: &PackedW, a: Option<&[f32]>, c: &mut [f32], epi: Epilogue) {
    let h = w.h;
    let kernel = w.kernel.expect("recurrent step: W_hh is not packed");
    assert!(h > 0 && c.len().is_multiple_of(h), "recurrent step: c is (nb, H)");
    let nb = c.len() / h;
    if let Some(a) = a {
        assert_eq!(a.len(), nb * h, "recurrent step: a is (nb, H)");
    }
    if let Epilogue::Grad(_, hs) = epi {
        assert_eq!(hs.len(), nb * h, "recurrent step: h is (nb, H)");
    }
    let Some(a) = a else {
        match epi {
            Epilogue::Activate(act) => activate(act, c),
            Epilogue::Grad(act, hs) => {
                for (v, &hv) in c.iter_mut().zip(hs) {
                    *v *= activation_grad(act, hv);
                }
            }
        }
        return;
    };
    match kernel {
        Kernel::Reference => unreachable!("PackedW::pack refuses the reference kernel"),
        Kernel::Portable => portable_product(w.panels(), h, a, c, epi),
        Kernel::Avx2 => {
            assert!(simd::has_avx2(), "recurrent step: this CPU has no AVX2/FMA");
            // SAFETY: AVX2 and FMA are present (checked above); the operand lengths match
            // the shapes (checked above and by `panels`), which is all the kernel relies on.
            unsafe { simd::avx2_product(w.panels(), h, a, c, epi) }
        }
        Kernel::Avx512 => {
            assert!(simd::has_avx512(), "recurrent step: this CPU has no AVX-512F");
            // SAFETY: as above, for AVX-512F.
            unsafe { simd::avx512_product(w.panels(), h, a, c, epi) }
        }
    }
}

/// Writes rows i0.. (`rows` of them) and columns j0..j0+ncols of c (nb, H) from the
/// accumulators `acc` (rows, nr): the fused epilogue. Inlined into each kernel, so it is
/// compiled (and vectorised) with that kernel's instruction set; the operations are the
/// scalar reference's, so every kernel rounds alike.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_back(
    epi: Epilogue,
    c: &mut [f32],
    i0: usize,
    j0: usize,
    ncols: usize,
    acc: &[f32; MAX_TILE],
    rows: usize,
    nr: usize,
    h: usize,
) {
    for r in 0..rows {
        let at = (i0 + r) * h + j0;
        let c_row = &mut c[at..at + ncols];
        let acc_row = &acc[r * nr..r * nr + ncols];
        match epi {
            Epilogue::Activate(Activation::Tanh) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = tanh_f32(*v + s);
                }
            }
            Epilogue::Activate(Activation::Sigmoid) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = sigmoid(*v + s);
                }
            }
            Epilogue::Activate(Activation::Relu) => {
                for (v, &s) in c_row.iter_mut().zip(acc_row) {
                    *v = (*v + s).max(0.0);
                }
            }
            Epilogue::Grad(act, hs) => {
                let h_row = &hs[at..at + ncols];
                for ((v, &s), &hv) in c_row.iter_mut().zip(acc_row).zip(h_row) {
                    *v = (*v + s) * activation_grad(act, hv);
                }
            }
        }
    }
}

/// The portable kernel: the same tiling and FMA order as the SIMD ones, in plain Rust.
fn portable_product(panels: &[f32], h: usize, a: &[f32], c: &mut [f32], epi: Epilogue) {
    let nb = c.len() / h;
    let nr = PORTABLE_NR;
    let mut acc = [0.0f32; MAX_TILE];
    for (p, panel) in panels.chunks_exact(h * nr).enumerate() {
        let j0 = p * nr;
        let ncols = nr.min(h - j0);
        for i0 in (0..nb).step_by(PORTABLE_MR) {
            let rows = PORTABLE_MR.min(nb - i0);
            acc[..rows * nr].fill(0.0);
            for (k, b_row) in panel.chunks_exact(nr).enumerate() {
                for r in 0..rows {
                    let av = a[(i0 + r) * h + k];
                    for (s, &bv) in acc[r * nr..(r + 1) * nr].iter_mut().zip(b_row) {
                        *s = av.mul_add(bv, *s);
                    }
                }
            }
            write_back(epi, c, i0, j0, ncols, &acc, rows, nr, h);
        }
    }
}
