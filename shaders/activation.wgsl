// Element-wise activations: ReLU forward and backward.
//
// Layout: flat f32 arrays of `len` elements (any tensor shape; position does not matter).
// Bindings (group 0):
//   relu_forward:  0 params, 1 x (read), 2 y (read_write)                    y = max(x, 0)
//   relu_backward: 0 params, 1 y (read), 3 dy (read), 4 dx (read_write)
//                  dx = dy where y > 0, else 0 (the forward output decides, so x need not be kept)
// One invocation: one element.
// Dispatch: ceil(len / WG) workgroups of WG invocations, spread over x and y by `grid()` (at most
// 65535 per dimension); the linear id is rebuilt from num_workgroups and bounds-checked.

override WG: u32 = 256;

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_in: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < params.len) {
        dst[i] = max(src[i], 0.0);
    }
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < params.len) {
        grad_in[i] = select(0.0, grad_out[i], src[i] > 0.0);
    }
}
