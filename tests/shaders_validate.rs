//! Every kernel's module source (its shaders/*.wgsl file after the shaders/common/*.wgsl
//! preludes it uses, as `Kernel::source` assembles it for the pipelines) parses and
//! validates with naga, without a device, and every shader file is registered. The preludes
//! are not checked alone: they are not modules (they call functions each kernel defines).

use wgrnn::gpu::kernels::{params, Kernel, PRELUDES, SHADERS};

#[test]
fn every_kernel_source_parses_and_validates() {
    for k in Kernel::ALL {
        let file = k.shader().0;
        let src = k.source();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{file}: parse error:\n{}", e.emit_to_string(&src)));
        // Only the subgroup variants may use subgroup built-ins; every other kernel must
        // validate with no capability at all.
        let caps = if k.needs_subgroups() {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{file}: validation error:\n{}", e.emit_to_string(&src)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{file}: no entry point `main`"
        );
    }
}

#[test]
fn subgroup_kernels_are_exactly_the_sg_files() {
    for k in Kernel::ALL {
        assert_eq!(k.needs_subgroups(), k.shader().0.ends_with("_sg.wgsl"), "{k:?}");
    }
}

#[test]
fn every_shader_file_is_registered() {
    let list = |dir: &str| -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
        names.sort();
        names
    };
    let mut registered: Vec<String> = SHADERS.iter().map(|(f, _)| f.to_string()).collect();
    registered.sort();
    assert_eq!(list("shaders"), registered, "shaders/ and kernels::SHADERS disagree");
    // every shared file is a prelude of some kernel, so none is dead
    let mut preludes: Vec<String> = PRELUDES
        .iter()
        .map(|(f, _)| f.trim_start_matches("common/").to_string())
        .collect();
    preludes.sort();
    assert_eq!(
        list("shaders/common"),
        preludes,
        "shaders/common/ and the preludes disagree"
    );
    for &(f, _) in PRELUDES {
        assert!(
            Kernel::ALL.iter().any(|k| k.preludes().iter().any(|p| p.0 == f)),
            "{f} is prepended to no kernel"
        );
    }
}

/// The Rust parameter structs mirror each shader's `struct P`: the same field names in the
/// same order, and the same size (so every offset matches: all fields are 4 bytes).
#[test]
fn parameter_structs_mirror_the_shaders() {
    for k in Kernel::ALL {
        let file = k.shader().0;
        let module = naga::front::wgsl::parse_str(&k.source()).unwrap();
        let (members, span) = module
            .types
            .iter()
            .find_map(|(_, t)| match (&t.name, &t.inner) {
                (Some(name), naga::TypeInner::Struct { members, span }) if name == "P" => Some((members, *span)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file}: no struct P"));
        let names: Vec<&str> = members.iter().map(|m| m.name.as_deref().unwrap_or("")).collect();
        assert_eq!(names, params::fields(k), "{file}: struct P fields vs kernels::params");
        assert_eq!(
            span as usize,
            params::size(k),
            "{file}: struct P size vs kernels::params"
        );
        assert!(
            params::size(k) <= params::PARAM_WORDS * 4,
            "{file}: parameter block too large"
        );
    }
}
