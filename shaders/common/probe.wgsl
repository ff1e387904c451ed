// The non-finite probe of the optimiser kernels (sgd.wgsl, adam.wgsl, adagrad.wgsl), prepended
// to each by kernels::Kernel::source(). Not a module on its own: each kernel declares the
// bindings it uses, `scalars` (array<f32>, the step's record from index 0) and `probe`
// ((PROBE_WORDS) array<atomic<u32>>: two sticky flags, then each one's record).
//
// The non-finite probe (gpu::scalars): a value written whose exponent bits are all ones
// (inf or NaN; tested on the bits because WGSL lets compilers assume floats are finite)
// sets sticky flag k (0 the weights, 1 the optimiser state) to the bits of 1.0. The one
// invocation that finds it clear since the host cleared it copies the step's record (loss,
// Σ g², bias corrections, step: scalars[0..RECORD]) to record k: u32 atomics only, and the
// same bits whichever invocation wins.
const RECORD: u32 = 7u;
fn probe_check(k: u32, v: f32) {
    if ((bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u || atomicLoad(&probe[k]) != 0u) {
        return;
    }
    if (atomicExchange(&probe[k], 0x3f800000u) == 0u) {
        for (var i = 0u; i < RECORD; i++) {
            atomicStore(&probe[2u + RECORD * k + i], bitcast<u32>(scalars[i]));
        }
    }
}
