// Max-pooling 2-D over pool x pool windows moved by `stride`, valid padding; backward as a gather.
//
// Layout (row-major, planes = batch * channels):
//   x, dx: [planes, in_h, in_w] f32;  y, dy: [planes, out_h, out_w] f32;
//   argmax: [planes, out_h, out_w] u32, the flat index into x of the element each window chose.
// Choice (as src/cpu/max_pool2d.rs): the first NaN in row-major window order if there is one, else
// the first maximum (a later element must be strictly greater), so a window of equal values chooses
// its top-left element.
// Bindings (group 0):
//   max_pool2d_forward:  0 params, 1 x (read), 2 y (read_write), 3 argmax (read_write)
//   max_pool2d_backward: 0 params, 4 argmax (read), 5 dy (read), 6 dx (read_write)
// One invocation: forward, one output element; backward, one input element dx[i], the sum of dy over
// the windows that contain i and chose it, added in row-major output order (no scatter, no atomics).
// Dispatch: ceil(count / WG) workgroups of WG invocations (count = outputs forward, inputs
// backward), spread over x and y by `grid()`; the linear id is rebuilt from num_workgroups and
// bounds-checked. Consecutive invocations take consecutive columns, so y, argmax and dx are written
// contiguously. (A mapping of one workgroup per row, which makes the plane and row workgroup-uniform
// and spares the per-invocation divisions, timed the same on lavapipe: the window gathers dominate.)

override WG: u32 = 256;

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    pool: u32,
    stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax_out: array<u32>;
@group(0) @binding(4) var<storage, read> argmax_in: array<u32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Tested on the bits: WGSL lets implementations assume floats are never NaN, so `v != v` may fold.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn replaces(candidate: f32, best: f32) -> bool {
    return !is_nan(best) && (is_nan(candidate) || candidate > best);
}

@compute @workgroup_size(WG)
fn max_pool2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let out = linear_id(wid, nwg, lid);
    if (out >= params.planes * params.out_h * params.out_w) {
        return;
    }
    let row = out / params.out_w; // plane * out_h + oy
    let ox = out % params.out_w;
    let plane = row / params.out_h;
    let oy = row % params.out_h;
    let top_left = (plane * params.in_h + oy * params.stride) * params.in_w + ox * params.stride;
    var best_at = top_left;
    var best = x[top_left];
    for (var ky = 0u; ky < params.pool; ky++) {
        for (var kx = 0u; kx < params.pool; kx++) {
            let at = top_left + ky * params.in_w + kx;
            let v = x[at];
            if (replaces(v, best)) {
                best = v;
                best_at = at;
            }
        }
    }
    y[out] = best;
    argmax_out[out] = best_at;
}

// The windows along one axis that contain position `p`: those with start <= p < start + pool,
// start = o * stride, 0 <= o < out. Returns (first, last); empty when first > last.
fn windows_containing(p: u32, out: u32) -> vec2<u32> {
    let first = select(0u, (p - params.pool) / params.stride + 1u, p >= params.pool);
    let last = min(p / params.stride, out - 1u);
    return vec2<u32>(first, last);
}

@compute @workgroup_size(WG)
fn max_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let me = linear_id(wid, nwg, lid);
    if (me >= params.planes * params.in_h * params.in_w) {
        return;
    }
    let row = me / params.in_w; // plane * in_h + h
    let w = me % params.in_w;
    let plane = row / params.in_h;
    let rows = windows_containing(row % params.in_h, params.out_h);
    let cols = windows_containing(w, params.out_w);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        let out_row = (plane * params.out_h + oy) * params.out_w;
        for (var ox = cols.x; ox <= cols.y; ox++) {
            if (argmax_in[out_row + ox] == me) {
                sum += dy[out_row + ox];
            }
        }
    }
    dx[me] = sum;
}
