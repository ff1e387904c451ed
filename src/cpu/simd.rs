//! The x86-64 micro-kernels of the packed recurrent product (see `packed` for the layout
//! and the determinism argument). Each kernel keeps an MR×NR tile of c in registers, runs
//! k = 0..H as one FMA per element and k, then hands the tile to the shared write-back.

use super::tile::{copy_short, write_back, Epilogue, Lhs, MAX_TILE};

pub const AVX512_MR: usize = 8;
pub const AVX512_NR: usize = 32;
pub const AVX2_MR: usize = 6;
pub const AVX2_NR: usize = 16;
/// k per block of a long sum: a block of one panel (KC·NR floats, 32 KiB for AVX-512) stays
/// in L1/L2 while every row tile passes over it.
const KC: usize = 256;
/// Row tiles per block of a tall A: MC rows × KC of A stay in L2 while every panel of the
/// k-block passes over them, instead of A streaming from memory once per panel.
const MC_TILES: usize = 12;

/// AVX2 and FMA, detected at run time (std caches the answer).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512F, detected at run time.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Tiles c (m, N) into MR×NR blocks, panel by panel so one panel of B stays in cache while
/// every row tile passes over it. `tile(rows, a, rs, cs, b, kn, init, acc)` sets acc
/// (rows, NR) to acc·init + A (rows, kn) · b (kn, NR), A[r, kk] at a + r·rs + kk·cs.
///
/// # Safety
/// `tile` may read A[r, kk] for r < rows ≤ MR, kk < kn, kn·NR values from `b`, and write
/// rows·NR into acc; the asserts here keep those reads inside the slices.
#[inline(always)]
unsafe fn drive<const MR: usize, const NR: usize>(
    panels: &[f32],
    k: usize,
    n: usize,
    a: Lhs,
    c: &mut [f32],
    epi: Epilogue,
    tile: impl Fn(usize, *const f32, usize, usize, *const f32, usize, bool, &mut [f32; MAX_TILE]),
) {
    let m = c.len() / n;
    assert!(MR * NR <= MAX_TILE, "micro-tile larger than its buffer");
    assert_eq!(panels.len(), n.div_ceil(NR) * k * NR, "packed B has the wrong shape");
    match a {
        Lhs::Rows(a) => assert_eq!(a.len(), m * k, "a is (m, K)"),
        Lhs::Cols(a, ld) => assert!(ld >= m && a.len() >= (k - 1) * ld + m, "a is (K, ld ≥ m)"),
    }
    // Long sums (k = T·B in the weight gradients) run in blocks of KC. Between blocks the
    // partial sums wait in c and are reloaded into the registers, which continues each
    // element's FMA chain exactly; only a plain store leaves c free to hold them.
    let kc = if matches!(epi, Epilogue::Store) { KC } else { k };
    let mut acc = [0.0f32; MAX_TILE];
    for k0 in (0..k).step_by(kc) {
        let kn = kc.min(k - k0);
        for ib in (0..m).step_by(MC_TILES * MR) {
            for (p, panel) in panels.chunks_exact(k * NR).enumerate() {
                let j0 = p * NR;
                let ncols = NR.min(n - j0);
                for i0 in (ib..m.min(ib + MC_TILES * MR)).step_by(MR) {
                    let rows = MR.min(m - i0);
                    // Rows i0..i0+rows (≤ MR, in bounds: i0 + rows ≤ m), k in k0..k0+kn.
                    let (a0, rs, cs) = match a {
                        Lhs::Rows(a) => (a[i0 * k + k0..].as_ptr(), k, 1),
                        Lhs::Cols(a, ld) => (a[k0 * ld + i0..].as_ptr(), 1, ld),
                    };
                    if k0 > 0 {
                        for r in 0..rows {
                            let at = (i0 + r) * n + j0;
                            copy_short(&mut acc[r * NR..r * NR + ncols], &c[at..at + ncols]);
                        }
                    }
                    tile(rows, a0, rs, cs, panel[k0 * NR..].as_ptr(), kn, k0 > 0, &mut acc);
                    write_back(epi, c, i0, j0, ncols, &acc, rows, NR, n);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// c = epilogue(c + a · B), B packed as (ceil(N/32), K, 32).
///
/// # Safety
/// The CPU has AVX-512F. (Shapes are asserted in `drive`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn avx512_product(panels: &[f32], k: usize, n: usize, a: Lhs, c: &mut [f32], epi: Epilogue) {
    drive::<AVX512_MR, AVX512_NR>(
        panels,
        k,
        n,
        a,
        c,
        epi,
        |rows, a, rs, cs, b, kn, init, acc| match rows {
            8 => tile512::<8>(a, rs, cs, kn, b, init, acc),
            7 => tile512::<7>(a, rs, cs, kn, b, init, acc),
            6 => tile512::<6>(a, rs, cs, kn, b, init, acc),
            5 => tile512::<5>(a, rs, cs, kn, b, init, acc),
            4 => tile512::<4>(a, rs, cs, kn, b, init, acc),
            3 => tile512::<3>(a, rs, cs, kn, b, init, acc),
            2 => tile512::<2>(a, rs, cs, kn, b, init, acc),
            _ => tile512::<1>(a, rs, cs, kn, b, init, acc),
        },
    )
}

/// acc (R, 32) = acc·init + A (R, K) · b (K, 32), A[r, kk] at a + r·rs + kk·cs.
///
/// # Safety
/// AVX-512F is present; A[r, kk] readable for r < R, kk < K; K·32 values at `b`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile512<const R: usize>(
    a: *const f32,
    rs: usize,
    cs: usize,
    k: usize,
    b: *const f32,
    init: bool,
    acc: &mut [f32; MAX_TILE],
) {
    // SAFETY: only called from `avx512_product` (AVX-512F present), through `drive`, which
    // guarantees A[r, kk] for r < R, kk < K and K·32 values at `b`; acc holds ≥ R·32.
    unsafe {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        if init {
            for r in 0..R {
                c0[r] = _mm512_loadu_ps(acc.as_ptr().add(r * 32));
                c1[r] = _mm512_loadu_ps(acc.as_ptr().add(r * 32 + 16));
            }
        }
        for kk in 0..k {
            let b0 = _mm512_loadu_ps(b.add(kk * 32));
            let b1 = _mm512_loadu_ps(b.add(kk * 32 + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * rs + kk * cs));
                c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
            }
        }
        for r in 0..R {
            _mm512_storeu_ps(acc.as_mut_ptr().add(r * 32), c0[r]);
            _mm512_storeu_ps(acc.as_mut_ptr().add(r * 32 + 16), c1[r]);
        }
    }
}

/// c = epilogue(c + a · B), B packed as (ceil(N/16), K, 16).
///
/// # Safety
/// The CPU has AVX2 and FMA. (Shapes are asserted in `drive`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn avx2_product(panels: &[f32], k: usize, n: usize, a: Lhs, c: &mut [f32], epi: Epilogue) {
    drive::<AVX2_MR, AVX2_NR>(
        panels,
        k,
        n,
        a,
        c,
        epi,
        |rows, a, rs, cs, b, kn, init, acc| match rows {
            6 => tile256::<6>(a, rs, cs, kn, b, init, acc),
            5 => tile256::<5>(a, rs, cs, kn, b, init, acc),
            4 => tile256::<4>(a, rs, cs, kn, b, init, acc),
            3 => tile256::<3>(a, rs, cs, kn, b, init, acc),
            2 => tile256::<2>(a, rs, cs, kn, b, init, acc),
            _ => tile256::<1>(a, rs, cs, kn, b, init, acc),
        },
    )
}

/// acc (R, 16) = acc·init + A (R, K) · b (K, 16), A[r, kk] at a + r·rs + kk·cs.
///
/// # Safety
/// AVX2 and FMA are present; A[r, kk] readable for r < R, kk < K; K·16 values at `b`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile256<const R: usize>(
    a: *const f32,
    rs: usize,
    cs: usize,
    k: usize,
    b: *const f32,
    init: bool,
    acc: &mut [f32; MAX_TILE],
) {
    // SAFETY: only called from `avx2_product` (AVX2 + FMA present), through `drive`, which
    // guarantees A[r, kk] for r < R, kk < K and K·16 values at `b`; acc holds ≥ R·16.
    unsafe {
        let mut c0 = [_mm256_setzero_ps(); R];
        let mut c1 = [_mm256_setzero_ps(); R];
        if init {
            for r in 0..R {
                c0[r] = _mm256_loadu_ps(acc.as_ptr().add(r * 16));
                c1[r] = _mm256_loadu_ps(acc.as_ptr().add(r * 16 + 8));
            }
        }
        for kk in 0..k {
            let b0 = _mm256_loadu_ps(b.add(kk * 16));
            let b1 = _mm256_loadu_ps(b.add(kk * 16 + 8));
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(r * rs + kk * cs));
                c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
                c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(acc.as_mut_ptr().add(r * 16), c0[r]);
            _mm256_storeu_ps(acc.as_mut_ptr().add(r * 16 + 8), c1[r]);
        }
    }
}

/// Non-x86 targets never detect these kernels; the stubs keep `packed` free of cfgs.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn avx512_product(_: &[f32], _: usize, _: usize, _: Lhs, _: &mut [f32], _: Epilogue) {
    unreachable!("AVX-512 kernel on a non-x86 target")
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn avx2_product(_: &[f32], _: usize, _: usize, _: Lhs, _: &mut [f32], _: Epilogue) {
    unreachable!("AVX2 kernel on a non-x86 target")
}
