// 2-D convolution with bias: forward (fused bias + optional ReLU), gradient w.r.t. the input, and
// gradient w.r.t. weight and bias (split-K partial sums, then a fixed-order reduction: no atomics).
//
// Layouts (row-major, f32):
//   x  [batch, in_c, in_h, in_w]      w  [out_c, in_c, k_h, k_w]      b  [out_c]
//   y  [batch, out_c, out_h, out_w]   dy, dx, dw, db: the shapes of y, x, w, b
//   partial [splits, out_c, in_c*k_h*k_w + 1]   (the last column holds the bias gradient)
// Padding: `pad_top`/`pad_left` zero rows/columns before the input (Keras 'same' puts any extra
// one after, which needs no special case: reads past the end are zero too).
//
// All three passes are implicit GEMMs with the same shape, the one that suits lavapipe (see
// ENGINEERING.md): a workgroup of WG invocations spans GEMM columns, one column per invocation,
// and ROWS GEMM rows held as ROWS scalar accumulators. The row operand's address depends only on
// workgroup_id and loop counters, so it is one scalar (broadcast) load; the column operand is one
// gathered load per invocation, reused ROWS times. Out-of-range rows/columns are clamped for the
// loads and skipped at the store, so control flow stays uniform.
//
// Bindings (group 0), binding 0 = Params (uniform):
//   conv2d_forward:         1 x (read), 2 w (read), 3 b (read), 4 y (read_write)
//       rows = output channels, columns = output pixels (n, oy, ox)
//   conv2d_backward_input:  2 w (read), 5 dy (read), 6 dx (read_write)
//       rows = input channels, columns = input pixels (n, iy, ix): a transposed convolution
//   conv2d_backward_weight: 1 x (read), 5 dy (read), 7 partial (read_write)
//       rows = output channels, columns = (ci, ky, kx) and one bias column; the reduction over
//       (n, oy, ox) is cut into `splits` chunks of `split_len` (n, oy) rows, one chunk per wid.y
//   conv2d_reduce_weight:   7 partial (read), 8 dw (read_write), 9 db (read_write)
//       one invocation per (co, column): sums the splits in order
// Dispatch: forward / backward_input: (column groups spread over x and y by grid(), row groups in
// z); backward_weight: (column groups, splits, row groups); reduce: grid over out_c*(ckk+1) / WG.

override WG: u32 = 64;
// Output rows per workgroup, at most MAX_ROWS.
override ROWS: u32 = 8;
const MAX_ROWS: u32 = 32u;
// False when the convolution has no padding: every tap then lies inside the input, and the
// bounds checks (a good part of the inner loop on lavapipe) are compiled out.
override PADDED: bool = true;

struct Params {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    k_h: u32,
    k_w: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    relu: u32,
    // backward_weight: (n, oy) rows per split, and the number of splits.
    split_len: u32,
    splits: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;
@group(0) @binding(9) var<storage, read_write> db: array<f32>;
@group(0) @binding(10) var<storage, read> partial_in: array<f32>;
// Weights packed tap-major for the forward pass: packed[k][co], co padded to a multiple of 4 with
// zeros, so one vec4 load at a workgroup-uniform address brings four output channels' weights.
@group(0) @binding(11) var<storage, read> packed: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> packed_out: array<f32>;

// packed_out[k * out_c4 + co] = w[co * ckk + k], zero for the padding channels.
@compute @workgroup_size(WG)
fn conv2d_pack_weights(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let ckk = p.in_c * p.k_h * p.k_w;
    let out_c4 = (p.out_c + 3u) / 4u * 4u;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= ckk * out_c4) {
        return;
    }
    let k = i / out_c4;
    let co = i % out_c4;
    packed_out[i] = select(0.0, w[min(co, p.out_c - 1u) * ckk + k], co < p.out_c);
}

// One input value of the forward pass: x[x_row + ix], or zero where the tap falls in the padding.
fn input_at(x_row: u32, ix: i32, row_ok: bool) -> f32 {
    let inside = clamp(ix, 0, i32(p.in_w) - 1);
    let v = x[x_row + u32(inside)];
    if (PADDED) {
        return select(0.0, v, row_ok && ix == inside);
    }
    return v;
}

// Forward: one invocation computes 4 output channels (a vec4 of accumulators) at 4 consecutive
// output pixels of one row. Each tap's 4 weights are one vec4 load from `packed`, shared by the 4
// pixels; at stride 1 the 4 pixels' inputs slide along the row, so a tap costs one new input load.
// Loads dominate on lavapipe (ALU alone runs ~10x faster), hence this reuse.
@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let quads = (p.out_w + 3u) / 4u;
    let columns = p.batch * p.out_h * quads;
    let col = (wid.x + wid.y * nwg.x) * WG + lid;
    let c = min(col, columns - 1u);
    let n = c / (p.out_h * quads);
    let oy = (c / quads) % p.out_h;
    let ox0 = (c % quads) * 4u;
    let iy0 = i32(oy * p.stride) - i32(p.pad_top);
    let ix0 = i32(ox0 * p.stride) - i32(p.pad_left);
    let s = i32(p.stride);
    let taps = p.k_h * p.k_w;
    let out_c4 = (p.out_c + 3u) / 4u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.in_c; ci++) {
        let x_plane = (n * p.in_c + ci) * p.in_h;
        for (var ky = 0u; ky < p.k_h; ky++) {
            let iy = iy0 + i32(ky);
            let row_ok = iy >= 0 && iy < i32(p.in_h);
            let x_row = (x_plane + u32(clamp(iy, 0, i32(p.in_h) - 1))) * p.in_w;
            let k_row = (ci * taps + ky * p.k_w) * out_c4 + wid.z;
            if (s == 1) {
                var v0 = input_at(x_row, ix0, row_ok);
                var v1 = input_at(x_row, ix0 + 1, row_ok);
                var v2 = input_at(x_row, ix0 + 2, row_ok);
                for (var kx = 0u; kx < p.k_w; kx++) {
                    let v3 = input_at(x_row, ix0 + i32(kx) + 3, row_ok);
                    let wv = packed[k_row + kx * out_c4];
                    acc0 += wv * v0;
                    acc1 += wv * v1;
                    acc2 += wv * v2;
                    acc3 += wv * v3;
                    v0 = v1;
                    v1 = v2;
                    v2 = v3;
                }
            } else {
                for (var kx = 0u; kx < p.k_w; kx++) {
                    let ix = ix0 + i32(kx);
                    let wv = packed[k_row + kx * out_c4];
                    acc0 += wv * input_at(x_row, ix, row_ok);
                    acc1 += wv * input_at(x_row, ix + s, row_ok);
                    acc2 += wv * input_at(x_row, ix + 2 * s, row_ok);
                    acc3 += wv * input_at(x_row, ix + 3 * s, row_ok);
                }
            }
        }
    }
    if (col >= columns) {
        return;
    }
    let sums = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let plane = p.out_h * p.out_w;
    for (var j = 0u; j < 4u; j++) {
        let ox = ox0 + j;
        for (var r = 0u; r < 4u; r++) {
            let co = wid.z * 4u + r;
            if (ox < p.out_w && co < p.out_c) {
                var v = sums[j][r] + b[co];
                if (p.relu != 0u) {
                    v = max(v, 0.0);
                }
                y[((n * p.out_c + co) * p.out_h + oy) * p.out_w + ox] = v;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let in_plane = p.in_h * p.in_w;
    let out_plane = p.out_h * p.out_w;
    let columns = p.batch * in_plane;
    let col = (wid.x + wid.y * nwg.x) * WG + lid;
    let c = min(col, columns - 1u);
    let n = c / in_plane;
    let pix = c % in_plane;
    // Output position (before dividing by the stride) that tap (0, 0) of this input pixel feeds.
    let ty0 = i32(pix / p.in_w + p.pad_top);
    let tx0 = i32(pix % p.in_w + p.pad_left);
    let s = i32(p.stride);
    let ci0 = wid.z * ROWS;
    let taps = p.k_h * p.k_w;

    var acc: array<f32, MAX_ROWS>;
    for (var co = 0u; co < p.out_c; co++) {
        let dy_plane = (n * p.out_c + co) * p.out_h;
        for (var ky = 0u; ky < p.k_h; ky++) {
            let ty = ty0 - i32(ky);
            let oy = ty / s;
            let row_ok = ty >= 0 && ty % s == 0 && oy < i32(p.out_h);
            let dy_row = (dy_plane + u32(clamp(oy, 0, i32(p.out_h) - 1))) * p.out_w;
            for (var kx = 0u; kx < p.k_w; kx++) {
                let tx = tx0 - i32(kx);
                let ox = tx / s;
                let ok = row_ok && tx >= 0 && tx % s == 0 && ox < i32(p.out_w);
                let g = select(0.0, dy[dy_row + u32(clamp(ox, 0, i32(p.out_w) - 1))], ok);
                let w_tap = ky * p.k_w + kx;
                for (var r = 0u; r < ROWS; r++) {
                    let ci = min(ci0 + r, p.in_c - 1u);
                    acc[r] = fma(w[(co * p.in_c + ci) * taps + w_tap], g, acc[r]);
                }
            }
        }
    }
    if (col >= columns) {
        return;
    }
    for (var r = 0u; r < ROWS; r++) {
        let ci = ci0 + r;
        if (ci < p.in_c) {
            dx[(n * p.in_c + ci) * in_plane + pix] = acc[r];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let taps = p.k_h * p.k_w;
    let ckk = p.in_c * taps;
    let col = wid.x * WG + lid;
    // Column ckk is the bias: its "input" is 1 everywhere.
    let is_bias = col == ckk;
    let c = min(col, ckk - 1u);
    let ci = c / taps;
    let ky = (c % taps) / p.k_w;
    let kx = c % p.k_w;
    let co0 = wid.z * ROWS;
    let split = wid.y;
    let out_plane = p.out_h * p.out_w;
    let first = split * p.split_len;
    let last = min(first + p.split_len, p.batch * p.out_h);

    var acc: array<f32, MAX_ROWS>;
    for (var t = first; t < last; t++) {
        let n = t / p.out_h;
        let oy = t % p.out_h;
        let iy = i32(oy * p.stride + ky) - i32(p.pad_top);
        let row_ok = iy >= 0 && iy < i32(p.in_h);
        let x_row = ((n * p.in_c + ci) * p.in_h + u32(clamp(iy, 0, i32(p.in_h) - 1))) * p.in_w;
        let dy_row = n * p.out_c * out_plane + oy * p.out_w;
        let ix0 = i32(kx) - i32(p.pad_left);
        for (var ox = 0u; ox < p.out_w; ox++) {
            let ix = ix0 + i32(ox * p.stride);
            let ok = row_ok && ix >= 0 && ix < i32(p.in_w);
            let v = select(select(0.0, x[x_row + u32(clamp(ix, 0, i32(p.in_w) - 1))], ok), 1.0, is_bias);
            for (var r = 0u; r < ROWS; r++) {
                let co = min(co0 + r, p.out_c - 1u);
                acc[r] = fma(dy[dy_row + co * out_plane + ox], v, acc[r]);
            }
        }
    }
    if (col > ckk) {
        return;
    }
    for (var r = 0u; r < ROWS; r++) {
        let co = co0 + r;
        if (co < p.out_c) {
            partial[(split * p.out_c + co) * (ckk + 1u) + col] = acc[r];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_reduce_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let ckk = p.in_c * p.k_h * p.k_w;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.out_c * (ckk + 1u)) {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partial_in[s * p.out_c * (ckk + 1u) + i];
    }
    let co = i / (ckk + 1u);
    let col = i % (ckk + 1u);
    if (col == ckk) {
        db[co] = sum;
    } else {
        dw[co * ckk + col] = sum;
    }
}
