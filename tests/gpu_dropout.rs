//! shaders/common/dropout.wgsl against src/dropout.rs: the same mask factor, bit for bit,
//! for many keys (seeds, drop probabilities, update counts past 2^32) and positions
//! (l, t, b, u), computed on the GPU by a test kernel around the prelude.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgrnn::config::Dropout;
use wgrnn::dropout::MaskKey;
use wgrnn::gpu::buffers::{tensor, upload, Scale, Staging};
use wgrnn::gpu::kernels::DROPOUT_WGSL;
use wgrnn::gpu::{GpuContext, GpuOptions};

/// One factor per case from 7 words: base, threshold, scale bits, l, t, b, u.
const TEST_KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= arrayLength(&out)) {
        return;
    }
    let k = i * 7u;
    let scale = bitcast<f32>(keys[k + 2u]);
    out[i] = dropout_factor(keys[k], keys[k + 1u], scale, keys[k + 3u], keys[k + 4u], keys[k + 5u], keys[k + 6u]);
}
"#;

#[test]
fn the_shader_draws_the_masks_of_src_dropout() {
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // P near 0, near 1 (threshold close to 2^32, scale large) and in between
    let ps = [
        0.0,
        1e-6,
        0.1,
        0.25,
        0.3,
        0.5,
        0.77,
        0.9,
        0.999,
        1.0 - f32::EPSILON / 2.0,
    ];
    let n = 50_000;
    let mut words = Vec::with_capacity(7 * n);
    let mut want = Vec::with_capacity(n);
    for i in 0..n {
        let d = Dropout {
            p: ps[i % ps.len()],
            seed: if i % 3 == 0 {
                rng.random()
            } else {
                rng.random_range(0..100)
            },
        };
        let step: u64 = if i % 4 == 0 {
            rng.random()
        } else {
            rng.random_range(0..10_000)
        };
        let key = MaskKey::new(&d, step);
        let big = |rng: &mut ChaCha8Rng| {
            if rng.random_range(0..4) == 0 {
                rng.random_range(0..u32::MAX as usize)
            } else {
                rng.random_range(0..600)
            }
        };
        let (l, t, b, u) = (rng.random_range(0..64), big(&mut rng), big(&mut rng), big(&mut rng));
        words.extend_from_slice(&[
            key.base,
            key.threshold,
            key.scale.to_bits(),
            l as u32,
            t as u32,
            b as u32,
            u as u32,
        ]);
        want.push(key.factor(l, t, b, u).to_bits());
    }
    let keys = tensor(&ctx, "keys", words.len(), Scale::Model).unwrap();
    upload(&ctx, &keys, 0, &words);
    let out = tensor(&ctx, "factors", n, Scale::Model).unwrap();
    let src = format!("{}\n{TEST_KERNEL}", DROPOUT_WGSL.1);
    let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("dropout test"),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("dropout test"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: keys.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: out.as_entire_binding(),
            },
        ],
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(n.div_ceil(64) as u32, 1, 1);
    }
    let got = Staging::default()
        .submit_and_read(&ctx, enc, &[(&out, 0, n)])
        .unwrap()
        .remove(0);
    let kept = want.iter().filter(|&&w| w != 0).count();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), *w, "case {i}: gpu {g} cpu {}", f32::from_bits(*w));
    }
    // both outcomes occur often, so the comparison covers kept and dropped units
    assert!(kept > n / 4 && kept < n * 9 / 10, "{kept} of {n} kept");
}
