// Where the per-call words sit in the `info` buffer every engine call uploads with its
// batch (gpu::batch_info defines the same slots; a test there compares the two files): the
// batch's loss scale (an f32's bits), this update's dropout key (base, threshold, the scale's
// bits: common/dropout.wgsl) and the length of every sequence of the whole batch (a kernel
// working on a chunk of the batch adds the chunk's first sequence). Constants only: each
// kernel binds the buffer itself, as `info`.

const INFO_LOSS_SCALE: u32 = 0u;
const INFO_DROPOUT: u32 = 1u;
const INFO_LENGTHS: u32 = 4u;
