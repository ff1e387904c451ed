//! Dropout masks from a counter-based generator (SPEC §1): whether unit u of sequence b at
//! step t of layer l's output is kept is a pure function of (seed, update count, l, t, b, u).
//! Nothing is stored or streamed, so the CPU path, every GPU kernel (`shaders/common/
//! dropout.wgsl`, the same arithmetic on u32) and a resumed run draw identical masks.

use crate::config::Dropout;

/// Wellons' `lowbias32` integer hash: full avalanche on 32-bit words, only shifts, xors and
/// wrapping multiplies, so WGSL computes the same bits.
pub fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The mask of one optimiser update: `step` is the number of updates done before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskKey {
    /// the hash of (seed, step), folded once per update
    pub base: u32,
    /// a draw below this is dropped: floor(P · 2^32)
    pub threshold: u32,
    /// 1 / (1 − P) in f32, applied to the kept units
    pub scale: f32,
}

impl MaskKey {
    pub fn new(d: &Dropout, step: u64) -> Self {
        let words = [d.seed as u32, (d.seed >> 32) as u32, step as u32, (step >> 32) as u32];
        let base = words.iter().fold(0x9e37_79b9, |h, &w| mix(h ^ w));
        MaskKey {
            base,
            threshold: (f64::from(d.p) * 4_294_967_296.0).floor().min(u32::MAX as f64) as u32,
            scale: 1.0 / (1.0 - d.p),
        }
    }

    /// The factor of unit `u` (0..H·dirs) of sequence `b` at step `t` (1..=T) of layer `l`'s
    /// output: 0, or `scale` when kept.
    pub fn factor(&self, l: usize, t: usize, b: usize, u: usize) -> f32 {
        self.row(l, t, b).factor(u)
    }

    /// The mask of one row (layer l, step t, sequence b): the words fold in order, so the
    /// hash of (l, t, b) is computed once and each unit adds one round.
    pub fn row(&self, l: usize, t: usize, b: usize) -> MaskRow {
        MaskRow {
            hash: [l, t, b].iter().fold(self.base, |h, &w| mix(h ^ w as u32)),
            threshold: self.threshold,
            scale: self.scale,
        }
    }
}

/// `MaskKey::row`: the factors of one row's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskRow {
    hash: u32,
    threshold: u32,
    scale: f32,
}

impl MaskRow {
    /// The factor of unit `u`: 0, or the key's scale when kept.
    pub fn factor(&self, u: usize) -> f32 {
        if mix(self.hash ^ u as u32) >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_about_one_minus_p_and_is_keyed_by_every_word() {
        let key = MaskKey::new(&Dropout { p: 0.3, seed: 7 }, 5);
        let kept = (0..100_000).filter(|&u| key.factor(1, 2, 3, u) > 0.0).count();
        assert!((kept as f64 / 1e5 - 0.7).abs() < 0.01, "{kept}");
        let other = MaskKey::new(&Dropout { p: 0.3, seed: 7 }, 6);
        let same = (0..1000)
            .filter(|&u| key.factor(0, 1, 0, u) == other.factor(0, 1, 0, u))
            .count();
        assert!(same < 700, "the update count must change the mask: {same}");
        let none = MaskKey::new(&Dropout { p: 0.0, seed: 7 }, 5);
        assert!((0..1000).all(|u| none.factor(0, 1, 0, u) == 1.0));
    }
}
