//! Adapter selection and reporting.

use wgrnn::gpu::{list_adapters, GpuContext, GpuOptions};

#[test]
fn context_describes_its_adapter() {
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (lavapipe in CI)");
    let d = ctx.describe();
    assert!(d.contains(&ctx.info.name), "{d}");
    assert_eq!(ctx.is_software(), ctx.info.device_type == wgpu::DeviceType::Cpu);
    let all = list_adapters();
    assert!(!all.is_empty());
    assert!(all.iter().any(|a| a.name == ctx.info.name));
    for a in &all {
        assert!(a.max_storage_buffer_binding_size > 0 && a.max_buffer_size > 0, "{a:?}");
        assert!(a.max_compute_invocations_per_workgroup >= 256, "{a:?}");
    }
}

#[test]
fn unknown_adapter_and_backend_are_errors() {
    let err = GpuContext::new(&GpuOptions {
        backend: None,
        adapter: Some("no-such-adapter-xyz".into()),
        ..GpuOptions::default()
    })
    .err()
    .expect("no adapter has that name");
    let msg = err.to_string();
    assert!(
        matches!(err, wgrnn::Error::Gpu { .. }) && msg.contains("no-such-adapter-xyz"),
        "{msg}"
    );
    // adapters exist, so the hint names them instead of asking for a driver
    assert!(
        msg.contains("WGRNN_ADAPTER") && msg.contains(&list_adapters()[0].name),
        "{msg}"
    );

    let err = GpuContext::new(&GpuOptions {
        backend: Some("glide".into()),
        ..GpuOptions::default()
    })
    .err()
    .expect("not a backend");
    assert!(matches!(err, wgrnn::Error::Config { .. }), "{err}");
}
