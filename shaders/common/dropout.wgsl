// Dropout masks (SPEC §1), the twin of src/dropout.rs bit for bit (tests/gpu_dropout.rs
// runs both on many keys): whether unit u of sequence b at step t of layer l's output is
// kept is a hash of the update's key and (l, t, b, u), so nothing is stored and every
// kernel draws the same mask. u32 arithmetic wraps in WGSL, as `wrapping_mul` does in Rust.
// Pure functions; not a module on its own.

// Wellons' lowbias32 (dropout::mix)
fn dropout_mix(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// MaskKey::factor: 0, or `scale` = 1 / (1 - P) when the draw is at least `threshold`
fn dropout_factor(base: u32, threshold: u32, scale: f32, l: u32, t: u32, b: u32, u: u32) -> f32 {
    var h = dropout_mix(base ^ l);
    h = dropout_mix(h ^ t);
    h = dropout_mix(h ^ b);
    h = dropout_mix(h ^ u);
    return select(0.0, scale, h >= threshold);
}
