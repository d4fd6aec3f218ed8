// Adam with decoupled weight decay (AdamW when weight_decay > 0), one step, as Keras 3 does it.
//
// Layout: flat f32 arrays of `len` elements: param, its gradient and the moments m and v (any
// tensor shape, or a whole parameter arena at once).
// Bindings (group 0): 0 params, 1 param (read_write), 2 grad (read), 3 m (read_write),
//   4 v (read_write).
// One invocation: one element, in this order (the CPU twin, `reference::adam::adam_step`, does the same
// f32 operations):
//   p = p - p * weight_decay * lr                     (decay first, on the old parameter)
//   m = m + (g - m) * one_minus_beta1
//   v = v + (g * g - v) * one_minus_beta2
//   p = p - (m * alpha) / (sqrt(v) + epsilon)
// alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t) and 1 - beta are computed on the host in f64 and
// rewritten in the uniform each step, so one bind group serves every step.
// Dispatch: ceil(len / WG) workgroups of WG invocations, spread over x and y by `grid()`; the
// linear id is rebuilt from num_workgroups and bounds-checked.

override WG: u32 = 256;

struct Params {
    len: u32,
    alpha: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    epsilon: f32,
    lr: f32,
    weight_decay: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= params.len) {
        return;
    }
    let g = grad[i];
    var p = param[i];
    p = p - p * params.weight_decay * params.lr;
    let m_new = m[i] + (g - m[i]) * params.one_minus_beta1;
    let v_new = v[i] + (g * g - v[i]) * params.one_minus_beta2;
    m[i] = m_new;
    v[i] = v_new;
    param[i] = p - (m_new * params.alpha) / (sqrt(v_new) + params.epsilon);
}
