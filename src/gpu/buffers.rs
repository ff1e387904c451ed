//! GPU tensors: allocation checked against the adapter's limits, uploads, and the one
//! read-back path (copy into a staging buffer in the same submission, map, poll).

use crate::error::{Error, Result};

use super::context::GpuContext;

/// Every tensor buffer can be bound as storage, cleared, uploaded to and copied from.
const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// What a buffer's size depends on, for the limit error's hint.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// fixed by the model (parameters, optimiser state)
    Model,
    /// proportional to the batch size B; `batch` is the B asked for
    PerBatch { batch: usize },
}

/// Checks `floats` f32s against the storage-binding and buffer limits; the error names the
/// limit and, for batch-sized buffers, the largest B that fits.
pub fn check_limits(ctx: &GpuContext, what: &str, floats: usize, scale: Scale) -> Result<()> {
    let needed = (floats as u64) * 4;
    let limits = [
        (
            ctx.limits.max_storage_buffer_binding_size,
            "max_storage_buffer_binding_size",
        ),
        (ctx.limits.max_buffer_size, "max_buffer_size"),
    ];
    for (limit, limit_name) in limits {
        if needed > limit {
            let hint = match scale {
                Scale::Model => "use a smaller hidden size / vocabulary, or an adapter with larger limits".to_string(),
                Scale::PerBatch { batch } => {
                    let per_b = needed.div_ceil(batch.max(1) as u64).max(1);
                    let fits = limit / per_b;
                    if fits == 0 {
                        "even B = 1 does not fit: use a shorter sequence (--seq-len) or a smaller model".to_string()
                    } else {
                        format!("the largest batch that fits is B = {fits}: pass --batch {fits} or less")
                    }
                }
            };
            return Err(Error::GpuLimit {
                what: what.to_string(),
                needed,
                limit,
                limit_name,
                hint,
            });
        }
    }
    Ok(())
}

/// A zero-initialised f32 (or u32) buffer of `floats` elements, rounded up to a whole
/// number of vec4s (at least one, so that empty tensors can still be bound, and the tiled
/// matrix products can bind any tensor as an array of vec4).
pub fn tensor(ctx: &GpuContext, what: &str, floats: usize, scale: Scale) -> Result<wgpu::Buffer> {
    let floats = floats.max(1).next_multiple_of(4);
    check_limits(ctx, what, floats, scale)?;
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(what),
        size: floats as u64 * 4,
        usage: USAGE,
        mapped_at_creation: false,
    }))
}

/// Queues an upload of `data` at element offset `off`; it lands before the next submission.
pub fn upload<T: bytemuck::Pod>(ctx: &GpuContext, buf: &wgpu::Buffer, off: usize, data: &[T]) {
    if !data.is_empty() {
        ctx.queue
            .write_buffer(buf, (off * std::mem::size_of::<T>()) as u64, bytemuck::cast_slice(data));
    }
}

/// A region to read back: buffer, element offset, element count (f32).
pub type Region<'a> = (&'a wgpu::Buffer, usize, usize);

/// A reusable mappable buffer; it grows to the largest read-back seen and is never
/// reallocated for reads that fit, so reading the loss every step allocates nothing.
#[derive(Default)]
pub struct Staging {
    buf: Option<wgpu::Buffer>,
    /// read-backs done, for tests that check a path reads nothing back
    reads: u64,
}

impl Staging {
    /// Bytes of the staging buffer (0 before the first read-back).
    pub fn bytes(&self) -> u64 {
        self.buf.as_ref().map_or(0, |b| b.size())
    }

    /// Device-to-host reads done through this buffer.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Reads `regions` in a submission of its own (inside an error scope naming `op`).
    pub fn read(&mut self, ctx: &GpuContext, op: &str, regions: &[Region]) -> Result<Vec<Vec<f32>>> {
        let enc = ctx.device.create_command_encoder(&Default::default());
        ctx.scoped(op, || self.submit_and_read(ctx, enc, regions))
    }

    /// Appends copies of `regions` to `encoder`, submits it, waits, and returns the regions'
    /// contents. This is the only place the GPU path reads memory back.
    pub fn submit_and_read(
        &mut self,
        ctx: &GpuContext,
        mut encoder: wgpu::CommandEncoder,
        regions: &[Region],
    ) -> Result<Vec<Vec<f32>>> {
        self.reads += 1;
        let total: usize = regions.iter().map(|r| r.2).sum();
        let bytes = (total.max(1) as u64) * 4;
        if self.buf.as_ref().is_none_or(|b| b.size() < bytes) {
            check_limits(ctx, "read-back staging buffer", total, Scale::Model)?;
            self.buf = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = self
            .buf
            .as_ref()
            .ok_or_else(|| Error::gpu("staging buffer missing", "internal error"))?;
        let mut at = 0u64;
        for &(buf, off, len) in regions {
            if len > 0 {
                encoder.copy_buffer_to_buffer(buf, off as u64 * 4, staging, at, len as u64 * 4);
            }
            at += len as u64 * 4;
        }
        ctx.queue.submit([encoder.finish()]);
        if total == 0 {
            ctx.wait("read-back")?;
            return Ok(regions.iter().map(|_| Vec::new()).collect());
        }
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, 0..at, move |r| {
            // the receiver lives until the poll below has run the callback
            let _ = tx.send(r);
        });
        ctx.wait("read-back")?;
        pollster::block_on(rx.receive())
            .ok_or_else(|| {
                Error::gpu(
                    "read-back: the map callback never ran",
                    "the GPU device stopped responding",
                )
            })?
            .map_err(|e| {
                Error::gpu(
                    format!("read-back: mapping the staging buffer: {e}"),
                    "out of host memory?",
                )
            })?;
        let out = {
            let view = staging
                .get_mapped_range(0..at)
                .map_err(|e| Error::gpu(format!("read-back: {e}"), "internal error"))?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            let mut start = 0;
            regions
                .iter()
                .map(|r| {
                    let v = all[start..start + r.2].to_vec();
                    start += r.2;
                    v
                })
                .collect()
        };
        staging.unmap();
        Ok(out)
    }
}
