// Max-pooling 2-D over pool x pool windows moved by `stride`, valid padding; backward as a gather.
//
// Layout (row-major, planes = batch * channels):
//   x, dx: [planes, in_h, in_w] f32;  y, dy: [planes, out_h, out_w] f32;
//   argmax: [planes, out_h, out_w] u32, the flat index into x of the element each window chose.
// Choice (as src/reference/max_pool2d.rs): the first NaN in row-major window order if there is one,
// else the first maximum (a later element must be strictly greater), so a window of equal values
// chooses its top-left element.
// Bindings (group 0):
//   max_pool2d_forward:  0 params, 1 x (read), 2 y (read_write), 3 argmax (read_write)
//   max_pool2d_backward: 0 params, 4 argmax (read), 5 dy (read), 6 dx (read_write), 7 y (read, the
//                        forward output; read only with RELU_MASK)
// Forward: one invocation per output element; ceil(outputs / WG) workgroups spread over x and y by
// `grid()`, the linear id rebuilt from num_workgroups and bounds-checked.
// Backward, a gather (no scatter, no atomics): dx[i] = the sum of dy over the windows that contain
// i and chose it, in row-major output order. ceil(units / ROWS) workgroups spread by `grid()`,
// where a unit is a band of `stride` input rows when windows do not overlap (pool <= stride, the
// usual 2x2/2: no window loops, see backward_disjoint), an input row when they do.

override WG: u32 = 256;
// Backward: pass a window's gradient only where its maximum is positive, i.e. also apply the
// backward pass of a ReLU before the pool (its output is what the window chose).
override RELU_MASK: bool = false;
// Backward: units (bands of rows) per workgroup: a workgroup has a fixed cost on lavapipe.
override ROWS: u32 = 4u;
// No element: an argmax that matches no input index.
const NONE: u32 = 0xffffffffu;

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
@group(0) @binding(7) var<storage, read> y_in: array<f32>;

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

// The gradient that window `o` passes to the element it chose: dy, or with RELU_MASK zero where the
// window's maximum (the ReLU output it chose) is not positive.
fn window_gradient(o: u32) -> f32 {
    if (RELU_MASK) {
        return select(0.0, dy[o], y_in[o] > 0.0);
    }
    return dy[o];
}

@compute @workgroup_size(WG)
fn max_pool2d_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (params.pool <= params.stride) {
        backward_disjoint(group, lid);
    } else {
        backward_overlapping(group, lid);
    }
}

// Windows that do not overlap: only window (h / stride, w / stride) can have chosen (h, w). The
// workgroup takes ROWS bands of `stride` input rows (one window row each; bands past the last
// window row get zeros); a lane takes a window column, reads its argmax and gradient once and
// writes the stride x stride inputs under it. Everything but the column is workgroup-uniform, so
// the divisions are scalar and the trip counts are uniform (per-lane ones make lanes diverge).
fn backward_disjoint(group: u32, lid: u32) {
    let bands_per_plane = (params.in_h + params.stride - 1u) / params.stride;
    let window_columns = (params.in_w + params.stride - 1u) / params.stride;
    let bands = params.planes * bands_per_plane;
    for (var band = group * ROWS; band < min(group * ROWS + ROWS, bands); band++) {
        let plane = band / bands_per_plane;
        let oy = band % bands_per_plane;
        let out_row = (plane * params.out_h + min(oy, params.out_h - 1u)) * params.out_w;
        for (var ox = lid; ox < window_columns; ox += WG) {
            let o = out_row + min(ox, params.out_w - 1u);
            let chosen_at = select(NONE, argmax_in[o], oy < params.out_h && ox < params.out_w);
            let g = window_gradient(o);
            for (var i = 0u; i < params.stride; i++) {
                let h = oy * params.stride + i;
                let x_row = (plane * params.in_h + h) * params.in_w;
                for (var j = 0u; j < params.stride; j++) {
                    let w = ox * params.stride + j;
                    if (h < params.in_h && w < params.in_w) {
                        dx[x_row + w] = select(0.0, g, chosen_at == x_row + w);
                    }
                }
            }
        }
    }
}

// Overlapping windows: the workgroup takes ROWS input rows, a lane an input column, looping over
// the windows that contain it (per-lane loops of varying length: slow on lavapipe, but rare).
fn backward_overlapping(group: u32, lid: u32) {
    let rows = params.planes * params.in_h;
    for (var row = group * ROWS; row < min(group * ROWS + ROWS, rows); row++) {
        let plane = row / params.in_h;
        let x_row = row * params.in_w;
        let window_rows = windows_containing(row % params.in_h, params.out_h);
        for (var w = lid; w < params.in_w; w += WG) {
            let cols = windows_containing(w, params.out_w);
            var sum = 0.0;
            for (var oy = window_rows.x; oy <= window_rows.y; oy++) {
                let out_row = (plane * params.out_h + oy) * params.out_w;
                for (var ox = cols.x; ox <= cols.y; ox++) {
                    if (argmax_in[out_row + ox] == x_row + w) {
                        sum += window_gradient(out_row + ox);
                    }
                }
            }
            dx[x_row + w] = sum;
        }
    }
}
