//! The x86-64 micro-kernels of the packed recurrent product (see `packed` for the layout
//! and the determinism argument). Each kernel keeps an MR×NR tile of c in registers, runs
//! k = 0..H as one FMA per element and k, then hands the tile to the shared write-back.

use super::packed::{write_back, Epilogue, MAX_TILE};

pub const AVX512_NR: usize = 32;
pub const AVX2_NR: usize = 16;

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

/// Tiles c (nb, H) into MR×NR blocks, panel by panel so one panel of B stays in L1 while
/// every row tile of the shard passes over it. `tile(rows, a, b, acc)` fills acc (rows, NR)
/// with a (rows, H) · panel (H, NR).
///
/// # Safety
/// `tile` may read rows·H values from `a` and H·NR from `b` and write rows·NR into acc,
/// with rows ≤ MR; the asserts here keep those reads inside the slices.
#[inline(always)]
unsafe fn drive<const MR: usize, const NR: usize>(
    panels: &[f32],
    h: usize,
    a: &[f32],
    c: &mut [f32],
    epi: Epilogue,
    tile: impl Fn(usize, *const f32, *const f32, &mut [f32; MAX_TILE]),
) {
    let nb = c.len() / h;
    assert!(MR * NR <= MAX_TILE, "micro-tile larger than its buffer");
    assert_eq!(panels.len(), h.div_ceil(NR) * h * NR, "packed W_hh has the wrong shape");
    assert_eq!(a.len(), nb * h, "a is (nb, H)");
    let mut acc = [0.0f32; MAX_TILE];
    for (p, panel) in panels.chunks_exact(h * NR).enumerate() {
        let j0 = p * NR;
        let ncols = NR.min(h - j0);
        for i0 in (0..nb).step_by(MR) {
            let rows = MR.min(nb - i0);
            // rows (≤ MR) rows of a from row i0 (in bounds: i0 + rows ≤ nb), the whole panel.
            tile(rows, a[i0 * h..].as_ptr(), panel.as_ptr(), &mut acc);
            write_back(epi, c, i0, j0, ncols, &acc, rows, NR, h);
        }
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// c = epilogue(c + a · B), B packed as (ceil(H/32), H, 32).
///
/// # Safety
/// The CPU has AVX-512F. (Shapes are asserted in `drive`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn avx512_product(panels: &[f32], h: usize, a: &[f32], c: &mut [f32], epi: Epilogue) {
    drive::<8, AVX512_NR>(panels, h, a, c, epi, |rows, a, b, acc| match rows {
        8 => tile512::<8>(a, h, b, acc),
        7 => tile512::<7>(a, h, b, acc),
        6 => tile512::<6>(a, h, b, acc),
        5 => tile512::<5>(a, h, b, acc),
        4 => tile512::<4>(a, h, b, acc),
        3 => tile512::<3>(a, h, b, acc),
        2 => tile512::<2>(a, h, b, acc),
        _ => tile512::<1>(a, h, b, acc),
    })
}

/// acc (R, 32) = a (R, H, row stride H) · b (H, 32).
///
/// # Safety
/// AVX-512F is present; R rows of H values at `a`, H·32 values at `b`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile512<const R: usize>(a: *const f32, h: usize, b: *const f32, acc: &mut [f32; MAX_TILE]) {
    // SAFETY: only called from `avx512_product` (AVX-512F present), through `drive`, which
    // guarantees R rows of H values at `a` and H·32 values at `b`; acc holds ≥ R·32.
    unsafe {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for k in 0..h {
            let b0 = _mm512_loadu_ps(b.add(k * 32));
            let b1 = _mm512_loadu_ps(b.add(k * 32 + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * h + k));
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

/// c = epilogue(c + a · B), B packed as (ceil(H/16), H, 16).
///
/// # Safety
/// The CPU has AVX2 and FMA. (Shapes are asserted in `drive`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn avx2_product(panels: &[f32], h: usize, a: &[f32], c: &mut [f32], epi: Epilogue) {
    drive::<6, AVX2_NR>(panels, h, a, c, epi, |rows, a, b, acc| match rows {
        6 => tile256::<6>(a, h, b, acc),
        5 => tile256::<5>(a, h, b, acc),
        4 => tile256::<4>(a, h, b, acc),
        3 => tile256::<3>(a, h, b, acc),
        2 => tile256::<2>(a, h, b, acc),
        _ => tile256::<1>(a, h, b, acc),
    })
}

/// acc (R, 16) = a (R, H, row stride H) · b (H, 16).
///
/// # Safety
/// AVX2 and FMA are present; R rows of H values at `a`, H·16 values at `b`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile256<const R: usize>(a: *const f32, h: usize, b: *const f32, acc: &mut [f32; MAX_TILE]) {
    // SAFETY: only called from `avx2_product` (AVX2 + FMA present), through `drive`, which
    // guarantees R rows of H values at `a` and H·16 values at `b`; acc holds ≥ R·16.
    unsafe {
        let mut c0 = [_mm256_setzero_ps(); R];
        let mut c1 = [_mm256_setzero_ps(); R];
        for k in 0..h {
            let b0 = _mm256_loadu_ps(b.add(k * 16));
            let b1 = _mm256_loadu_ps(b.add(k * 16 + 8));
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(r * h + k));
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
pub unsafe fn avx512_product(_: &[f32], _: usize, _: &[f32], _: &mut [f32], _: Epilogue) {
    unreachable!("AVX-512 kernel on a non-x86 target")
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn avx2_product(_: &[f32], _: usize, _: &[f32], _: &mut [f32], _: Epilogue) {
    unreachable!("AVX2 kernel on a non-x86 target")
}
