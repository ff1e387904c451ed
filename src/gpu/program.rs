//! A recorded program: the kernel launches, clears and copies of one engine call, with
//! their uniform parameter blocks and bind groups created once per model and batch shape.
//! Encoding a program into a command encoder does no allocation and writes no uniform, so
//! a whole training step is one encoder and one submission.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

use super::context::GpuContext;
use super::kernels::params::PARAM_WORDS;
use super::kernels::{Dispatch, Kernels};

/// The ops as they are recorded: a pair nothing fused is its two products.
fn recorded(ops: &[Op]) -> Vec<Op> {
    ops.iter()
        .flat_map(|op| match op {
            Op::Pair(ds) => ds.iter().cloned().map(Op::Dispatch).collect(),
            _ => vec![op.clone()],
        })
        .collect()
}

/// Stride of the parameter blocks in the uniform buffer: 256 bytes is the largest
/// `min_uniform_buffer_offset_alignment` any adapter asks for.
const SLOT_BYTES: usize = 256;

/// One entry of a program.
#[derive(Clone, Debug)]
pub enum Op {
    Dispatch(Dispatch),
    /// two matrix products that may share one dispatch (`kernels::matmul_pair`), which
    /// `Tuner::assign` decides; recorded as the two products, in order, if it did not
    Pair(Box<[Dispatch; 2]>),
    /// zero `len` floats at element offset `off`
    Clear {
        buf: wgpu::Buffer,
        off: usize,
        len: usize,
    },
    /// copy `len` floats between element offsets
    Copy {
        src: wgpu::Buffer,
        src_off: usize,
        dst: wgpu::Buffer,
        dst_off: usize,
        len: usize,
    },
}

enum Compiled {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: [u32; 3],
    },
    Clear(wgpu::Buffer, u64, u64),
    Copy(wgpu::Buffer, u64, wgpu::Buffer, u64, u64),
}

pub struct Program {
    steps: Vec<Compiled>,
    uniform: wgpu::Buffer,
    dispatches: usize,
}

impl Program {
    pub fn new(ctx: &GpuContext, kernels: &Kernels, ops: &[Op]) -> Result<Program> {
        ctx.scoped("building a GPU program", || {
            let ops = recorded(ops);
            let mut blocks: Vec<u32> = Vec::new();
            let mut slots = Vec::with_capacity(ops.len());
            for op in &ops {
                if let Op::Dispatch(d) = op {
                    slots.push(Some(blocks.len() * 4 / SLOT_BYTES));
                    blocks.extend_from_slice(&d.params);
                    blocks.resize(blocks.len() + SLOT_BYTES / 4 - PARAM_WORDS, 0);
                } else {
                    slots.push(None);
                }
            }
            if blocks.is_empty() {
                blocks.resize(SLOT_BYTES / 4, 0);
            }
            let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dispatch parameters"),
                contents: bytemuck::cast_slice(&blocks),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
            let mut steps = Vec::with_capacity(ops.len());
            for (op, slot) in ops.iter().zip(&slots) {
                steps.push(match op {
                    Op::Dispatch(d) => {
                        let pipeline = kernels.pipeline(d.kernel)?.clone();
                        let layout = pipeline.get_bind_group_layout(0);
                        let slot = slot.unwrap_or(0);
                        let mut entries = vec![wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &uniform,
                                offset: (slot * SLOT_BYTES) as u64,
                                size: wgpu::BufferSize::new((PARAM_WORDS * 4) as u64),
                            }),
                        }];
                        for (i, b) in d.buffers.iter().enumerate() {
                            entries.push(wgpu::BindGroupEntry {
                                binding: i as u32 + 1,
                                resource: b.as_entire_binding(),
                            });
                        }
                        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout: &layout,
                            entries: &entries,
                        });
                        Compiled::Dispatch {
                            pipeline,
                            bind_group,
                            groups: d.groups,
                        }
                    }
                    Op::Pair(_) => return Err(Error::gpu("a pair left in a recorded program", "internal error")),
                    Op::Clear { buf, off, len } => Compiled::Clear(buf.clone(), *off as u64 * 4, *len as u64 * 4),
                    Op::Copy {
                        src,
                        src_off,
                        dst,
                        dst_off,
                        len,
                    } => Compiled::Copy(
                        src.clone(),
                        *src_off as u64 * 4,
                        dst.clone(),
                        *dst_off as u64 * 4,
                        *len as u64 * 4,
                    ),
                });
            }
            let dispatches = slots.iter().flatten().count();
            Ok(Program {
                steps,
                uniform,
                dispatches,
            })
        })
    }

    /// Bytes of the parameter-block buffer.
    pub fn uniform_bytes(&self) -> u64 {
        self.uniform.size()
    }

    /// Number of kernel launches per execution.
    pub fn dispatches(&self) -> usize {
        self.dispatches
    }

    /// Appends the program to `encoder`: consecutive dispatches share one compute pass (wgpu
    /// orders dispatches that write and read the same buffer); clears and copies sit between
    /// passes.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_with(encoder, None);
    }

    /// `record`, with GPU timestamps written into `queries` at `index` (the start of the
    /// first compute pass) and `index + 1` (the end of the last): how long the device spent
    /// on the program, for the tuner. Needs the TIMESTAMP_QUERY feature.
    pub fn record_timed(&self, encoder: &mut wgpu::CommandEncoder, queries: &wgpu::QuerySet, index: u32) {
        self.record_with(encoder, Some((queries, index)));
    }

    fn record_with(&self, encoder: &mut wgpu::CommandEncoder, timing: Option<(&wgpu::QuerySet, u32)>) {
        let starts_pass = |i: usize| {
            matches!(self.steps[i], Compiled::Dispatch { .. })
                && (i == 0 || !matches!(self.steps[i - 1], Compiled::Dispatch { .. }))
        };
        let passes = (0..self.steps.len()).filter(|&i| starts_pass(i)).count();
        let mut pass_no = 0;
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Compiled::Dispatch { .. } => {
                    let (first, last) = (pass_no == 0, pass_no + 1 == passes);
                    pass_no += 1;
                    let timestamp_writes =
                        timing
                            .filter(|_| first || last)
                            .map(|(query_set, at)| wgpu::ComputePassTimestampWrites {
                                query_set,
                                beginning_of_pass_write_index: first.then_some(at),
                                end_of_pass_write_index: last.then_some(at + 1),
                            });
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes,
                    });
                    while let Some(Compiled::Dispatch {
                        pipeline,
                        bind_group,
                        groups,
                    }) = self.steps.get(i)
                    {
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        i += 1;
                    }
                }
                Compiled::Clear(buf, off, len) => {
                    if *len > 0 {
                        encoder.clear_buffer(buf, *off, Some(*len));
                    }
                    i += 1;
                }
                Compiled::Copy(src, so, dst, d_off, len) => {
                    if *len > 0 {
                        encoder.copy_buffer_to_buffer(src, *so, dst, *d_off, *len);
                    }
                    i += 1;
                }
            }
        }
    }

    /// Records the program into a fresh encoder, submits it and waits: for tests and
    /// one-off work.
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        ctx.scoped("running a GPU program", || {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            self.record(&mut encoder);
            ctx.queue.submit([encoder.finish()]);
            ctx.wait("running a GPU program")
        })
    }
}
