// 2-D convolution with bias: forward (fused bias + optional ReLU), gradient w.r.t. the input, and
// gradient w.r.t. weight and bias (split-K partial sums, then a fixed-order reduction: no atomics).
//
// Layouts (row-major, f32):
//   x  [batch, in_c, in_h, in_w]      w  [out_c, in_c, k_h, k_w]      b  [out_c]
//   y  [batch, out_c, out_h, out_w]   dy, dx, dw, db: the shapes of y, x, w, b
//   packed (forward)        [in_c*k_h*k_w][out_c4*4]     weights tap-major, zero-padded channels
//   packed (input gradient) [out_c][k_h*k_w][in_c4*4]    weights transposed and flipped
//   spread [batch, out_c, in_h + k_h - 1, in_w + k_w - 1]  dy spread out and zero-padded
//   partial [splits, out_c, in_c*k_h*k_w + 1]   (the last column holds the bias gradient)
// Padding: `pad_top`/`pad_left` zero rows/columns before the input (Keras 'same' puts any extra
// one after, which needs no special case: reads past the end are zero too).
//
// The input gradient is a convolution too: dy spread out (stride) and zero-padded (k - 1 - pad
// before), convolved (valid, stride 1) with the weights transposed and flipped. So it runs
// conv2d_forward, with this convolution's Params rewritten for that one (src/gpu/ops/conv2d.rs):
// one well-tuned kernel instead of two, and no padding checks in its inner loop.
//
// Shape of the work, chosen for lavapipe (one invocation per SIMD lane, see ENGINEERING.md): there
// a load costs far more than arithmetic (a loop of vec4 multiply-adds alone runs ~10x faster than
// the same loop with its loads), and even a load at a workgroup-uniform address is paid per lane.
// So every pass gives each invocation a 4 x 4 block of outputs, loads 4 weights (or 4 output
// gradients' taps) as one vec4, and at stride 1 slides a 4-wide window of inputs along the row so
// that each tap costs one new load. Out-of-range lanes clamp their loads and skip their stores, so
// control flow stays uniform. Four vec4 accumulators fit the 16 vector registers of AVX2.
//
// Bindings (group 0), binding 0 = Params (uniform):
//   conv2d_pack_weights:          2 w (read), 12 packed_out (read_write)        tap-major copy
//   conv2d_pack_weights_by_input: 2 w (read), 12 packed_out (read_write)        [co][tap][ci] copy
//   conv2d_forward:         1 x, 11 packed, 3 b (read), 4 y (read_write)
//       invocation: 4 output channels (wid.z) x 4 consecutive output pixels of one row
//   conv2d_spread_output_gradient: 5 dy (read), 13 spread (read_write)
//       workgroup: SPREAD_ROWS rows of dy; invocation: columns lid, lid + WG, ...
//   conv2d_backward_weight: 1 x, 5 dy (read), 7 partial (read_write)
//       invocation: input channel ci, kernel row ky, kernel columns kx0..kx0+3, for 4 output
//       channels (wid.z); one extra invocation column is the bias. wid.y is the split: a chunk of
//       `split_len` (n, oy) rows of the reduction
//   conv2d_reduce_weight:   10 partial (read), 8 dw, 9 db (read_write)
//       one invocation per (co, column): sums the splits in order
// Dispatch: pack and reduce: grid() over their element count / WG. forward: column groups spread
// over x and y by grid(), groups of 4 channels in z. spread: grid() over its workgroups.
// backward_weight: (column groups, splits, groups of 4 output channels).

override WG: u32 = 64;
// False when the convolution has no padding: the forward pass then skips its padding checks.
override PADDED: bool = true;
// Rows of dy per workgroup when spreading it for the input gradient (a workgroup has a fixed cost
// on lavapipe, and rows can be short).
override SPREAD_ROWS: u32 = 4u;

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
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;
@group(0) @binding(9) var<storage, read_write> db: array<f32>;
@group(0) @binding(10) var<storage, read> partial_in: array<f32>;
// Weights packed tap-major for the forward pass: packed[k][co], co padded to a multiple of 4 with
// zeros, so one vec4 load at a workgroup-uniform address brings four output channels' weights.
@group(0) @binding(11) var<storage, read> packed: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> packed_out: array<f32>;
@group(0) @binding(13) var<storage, read_write> spread: array<f32>;

// packed_out[(co * taps + tap) * in_c4 + ci] = w[(co * in_c + ci) * taps + taps - 1 - tap], zero
// for the padding channels: the weights transposed (in_c and out_c swapped) and flipped in both
// axes, packed as conv2d_forward wants them, for the input-gradient convolution.
@compute @workgroup_size(WG)
fn conv2d_pack_weights_by_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let taps = p.k_h * p.k_w;
    let in_c4 = (p.in_c + 3u) / 4u * 4u;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.out_c * taps * in_c4) {
        return;
    }
    let ci = i % in_c4;
    let tap = (i / in_c4) % taps;
    let co = i / (in_c4 * taps);
    packed_out[i] = select(0.0, w[(co * p.in_c + min(ci, p.in_c - 1u)) * taps + taps - 1u - tap], ci < p.in_c);
}

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

// Input gradient, step 1: spread dy into `spread` [batch, out_c, in_h + k_h - 1, in_w + k_w - 1],
// dy[n, co, oy, ox] at row oy * stride + k_h - 1 - pad_top, column ox * stride + k_w - 1 - pad_left.
// The rest of `spread` is zero from allocation and never written, so the input gradient is then a
// valid, stride-1 convolution of `spread` with the weights transposed and flipped
// (conv2d_pack_weights_by_input), which conv2d_forward computes with no padding checks.
// Params: this convolution's. One workgroup per SPREAD_ROWS rows of dy, lanes along the row.
@compute @workgroup_size(WG)
fn conv2d_spread_output_gradient(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32) {
    let rows = p.batch * p.out_c * p.out_h;
    let spread_h = p.in_h + p.k_h - 1u;
    let spread_w = p.in_w + p.k_w - 1u;
    let first = (wid.x + wid.y * nwg.x) * SPREAD_ROWS;
    for (var row = first; row < min(first + SPREAD_ROWS, rows); row++) {
        let plane = row / p.out_h;
        let sy = (row % p.out_h) * p.stride + p.k_h - 1u - p.pad_top;
        for (var ox = lid; ox < p.out_w; ox += WG) {
            let sx = ox * p.stride + p.k_w - 1u - p.pad_left;
            if (sy < spread_h && sx < spread_w) {
                spread[(plane * spread_h + sy) * spread_w + sx] = dy[row * p.out_w + ox];
            }
        }
    }
}

// One input value of the weight-gradient pass (zero in the padding); `x_row` is a clamped row.
fn tap_input(x_row: u32, ix: i32, row_ok: bool) -> f32 {
    let inside = clamp(ix, 0, i32(p.in_w) - 1);
    return select(0.0, x[x_row + u32(inside)], row_ok && ix == inside);
}

// Weight and bias gradient, partial sums over one split of the (n, oy) rows. One invocation owns
// input channel ci, kernel row ky and 4 consecutive kernel columns kx0..kx0+3 (a vec4 per output
// channel), for 4 output channels: each output-gradient load serves 4 taps, and at stride 1 the
// 4 taps' inputs slide along the row. The last invocation column is the bias (input 1).
@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let kx_quads = (p.k_w + 3u) / 4u;
    let lanes = p.in_c * p.k_h * kx_quads;
    let col = wid.x * WG + lid;
    let is_bias = col == lanes;
    let c = min(col, lanes - 1u);
    let ci = c / (p.k_h * kx_quads);
    let ky = (c / kx_quads) % p.k_h;
    let kx0 = (c % kx_quads) * 4u;
    let co0 = wid.z * 4u;
    let out_plane = p.out_h * p.out_w;
    let s = i32(p.stride);
    let first = wid.y * p.split_len;
    let last = min(first + p.split_len, p.batch * p.out_h);
    // Rows of dy for the 4 output channels, clamped so that a partial group stays in bounds.
    let co_off = vec4<u32>(min(co0, p.out_c - 1u), min(co0 + 1u, p.out_c - 1u), min(co0 + 2u, p.out_c - 1u),
                           min(co0 + 3u, p.out_c - 1u)) * out_plane;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var t = first; t < last; t++) {
        let n = t / p.out_h;
        let oy = t % p.out_h;
        let iy = i32(oy * p.stride + ky) - i32(p.pad_top);
        let row_ok = iy >= 0 && iy < i32(p.in_h);
        let x_row = ((n * p.in_c + ci) * p.in_h + u32(clamp(iy, 0, i32(p.in_h) - 1))) * p.in_w;
        let dy_row = n * p.out_c * out_plane + oy * p.out_w;
        let ix0 = i32(kx0) - i32(p.pad_left);
        var v = vec4<f32>(tap_input(x_row, ix0, row_ok), tap_input(x_row, ix0 + 1, row_ok),
                          tap_input(x_row, ix0 + 2, row_ok), 0.0);
        for (var ox = 0u; ox < p.out_w; ox++) {
            let ix = ix0 + i32(ox) * s;
            if (s == 1) {
                v.w = tap_input(x_row, ix + 3, row_ok);
            } else {
                v = vec4<f32>(tap_input(x_row, ix, row_ok), tap_input(x_row, ix + 1, row_ok),
                              tap_input(x_row, ix + 2, row_ok), tap_input(x_row, ix + 3, row_ok));
            }
            let taps = select(v, vec4<f32>(1.0, 0.0, 0.0, 0.0), is_bias);
            let g = dy_row + ox;
            acc0 += taps * dy[g + co_off.x];
            acc1 += taps * dy[g + co_off.y];
            acc2 += taps * dy[g + co_off.z];
            acc3 += taps * dy[g + co_off.w];
            v = vec4<f32>(v.yzw, 0.0);
        }
    }
    if (col > lanes) {
        return;
    }
    let ckk = p.in_c * p.k_h * p.k_w;
    let sums = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let co = co0 + r;
        if (co >= p.out_c) {
            continue;
        }
        let row = (wid.y * p.out_c + co) * (ckk + 1u);
        if (is_bias) {
            partial[row + ckk] = sums[r].x;
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (kx0 + j < p.k_w) {
                    partial[row + (ci * p.k_h + ky) * p.k_w + kx0 + j] = sums[r][j];
                }
            }
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
