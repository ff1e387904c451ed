//! Every shaders/*.wgsl parses and validates with naga, without a device, and every file
//! is registered in the kernel registry.

use wgrnn::gpu::kernels::SHADERS;

#[test]
fn every_shader_parses_and_validates() {
    for (file, src) in SHADERS {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{file}: parse error:\n{}", e.emit_to_string(src)));
        // Only the subgroup variants may use subgroup built-ins; every other kernel must
        // validate with no capability at all.
        let caps = if file.ends_with("_sg.wgsl") {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{file}: validation error:\n{}", e.emit_to_string(src)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{file}: no entry point `main`"
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = SHADERS.iter().map(|(f, _)| f.to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered, "shaders/ and kernels::SHADERS disagree");
}
