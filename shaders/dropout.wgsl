// Inverted dropout (training only): dst = src * scale where the element is kept, else 0. Dropout is
// linear in its input, so the backward pass is the same kernel on (dy, dx) with the same key.
//
// Layout: flat f32 arrays of `len` elements (any tensor shape); element i's fate depends only on
// (i, step, seed), never on its position in a workgroup.
// Mask: keep i iff pcg4d(i, step, seed_lo, seed_hi).x >= threshold, a stateless hash compared in
// integers (threshold = round(rate * 2^32)), identical to src/reference/dropout.rs, so nothing is stored.
// Bindings (group 0):
//   dropout: 0 params, 1 src (read), 2 dst (read_write)
// One invocation: one element.
// Dispatch: ceil(len / WG) workgroups of WG invocations, spread over x and y by `grid()` (at most
// 65535 per dimension); the linear id is rebuilt from num_workgroups and bounds-checked.

override WG: u32 = 256;

struct Params {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    threshold: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// Jarzynski and Olano, "Hash Functions for GPU Rendering", JCGT 2020.
fn pcg4d(input: vec4<u32>) -> vec4<u32> {
    var v = input * 1664525u + 1013904223u;
    v.x += v.y * v.w;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v.w += v.y * v.z;
    v ^= v >> vec4<u32>(16u);
    v.x += v.y * v.w;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v.w += v.y * v.z;
    return v;
}

@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < params.len) {
        let keep = pcg4d(vec4<u32>(i, params.step, params.seed_lo, params.seed_hi)).x >= params.threshold;
        dst[i] = select(0.0, src[i] * params.scale, keep);
    }
}
