// Activations shared by the four recurrent step kernels (rnn_step_{forward,backward}{,_sg}),
// prepended to each by kernels::Kernel::source(); WGSL has no #include. Pure functions of
// their arguments: `act` is the kernel's p.act (0 tanh, 1 sigmoid, 2 relu), passed in
// rather than read here, so this file names no binding. Not a module on its own (no entry
// point); tests/shaders_validate.rs validates it as part of each assembled kernel.

fn sigmoid(z: f32) -> f32 {
    // never evaluates exp of a large positive number
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

fn activate(z: f32, act: u32) -> f32 {
    switch act {
        // some backends return NaN for tanh of large |z|; tanh(±15) is ±1 in f32 already
        case 0u: { return tanh(clamp(z, -15.0, 15.0)); }
        case 1u: { return sigmoid(z); }
        default: { return max(z, 0.0); }
    }
}

// f'(z) from h = f(z), which the backward step has and z it does not
fn activation_grad(hv: f32, act: u32) -> f32 {
    switch act {
        case 0u: { return 1.0 - hv * hv; }
        case 1u: { return hv * (1.0 - hv); }
        default: { return select(0.0, 1.0, hv > 0.0); }
    }
}
