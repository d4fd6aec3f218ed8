// 2-D convolution as implicit matrix products, for hardware GPUs (the `tiled` kernel variant; the
// `software` variant in conv2d.wgsl is shaped for lavapipe): forward (fused bias + optional
// ReLU), the gradient w.r.t. the input, and the weight + bias gradient's split-K partial sums
// (summed in a fixed order by conv2d_reduce_weight in conv2d.wgsl: no atomics).
//
// Layouts (row-major, f32), as conv2d.wgsl:
//   x  [batch, in_c, in_h, in_w]      w  [out_c, in_c, k_h, k_w]      b  [out_c]
//   y  [batch, out_c, out_h, out_w]   dy, dx: the shapes of y, x
//   partial [splits, out_c, in_c*k_h*k_w + 1]   (the last column holds the bias gradient)
// Padding: `pad_top`/`pad_left` zero rows/columns before the input; reads past the end are zero.
//
// Each pass is a product C = A B whose operands are gathered from the tensors as the tiles are
// staged, never materialised (ckk = in_c*k_h*k_w; a column index n names an image and a pixel):
//   conv2d_mm_forward:         C [out_c, batch*out_h*out_w] = w [out_c, ckk] . im2col(x) [ckk, ...]
//   conv2d_mm_backward_input:  C [in_c, batch*in_h*in_w] = w as [in_c, out_c*k_h*k_w]
//                              . dy gathered at the output pixels each input pixel reached
//   conv2d_mm_backward_weight: C [out_c, ckk + 1] = dy [out_c, pixels of a split]
//                              . (im2col(x)^T | a column of ones) [pixels of a split, ckk + 1]
//     one partial product per split of batch*out_h*out_w (wid.z), the ones column giving db.
//
// Tiling (TensorFlow.js's conv2d_mm and CubeCL's implicit GEMM do the same): a workgroup of
// (TILE_N / 4) x (TILE_M / 4) invocations computes a TILE_M x TILE_N block of C. For each
// TILE_K-deep slice of the reduction, the workgroup stages the slices of A ([kk][m]) and B
// ([kk][n]) in workgroup memory, zero past every edge, then each invocation multiplies its 4 x 4
// register tile (rows m0 + 4 ly + i, columns n0 + 4 lx + j) with vec4 reads of both slices.
// Staging lanes run along the reduction or along pixels, whichever is contiguous in memory.
// vec4 path: where the shape allows it (VEC4: the forward pass when ckk is a multiple of 4, the
// weight gradient when out_h*out_w is), A's slice is loaded four values at a time through a
// vec4 view of the same buffer; otherwise one value at a time.
//
// Bindings (group 0), binding 0 = Params (uniform, conv2d.wgsl's):
//   conv2d_mm_forward:         1 x, 2 w, 6 w4 (w as vec4), 3 b (read), 4 y (read_write)
//   conv2d_mm_backward_input:  5 dy, 2 w (read), 4 dx (read_write, as y)
//   conv2d_mm_backward_weight: 1 x, 5 dy, 14 dy4 (dy as vec4) (read), 7 partial (read_write)
// Dispatch: forward and input gradient: column blocks spread over x and y by grid(), row blocks
// in z. Weight gradient: (column blocks, row blocks, splits); each split is `split_len` pixels, a
// multiple of TILE_K.

override TILE_M: u32 = 32u;
override TILE_N: u32 = 32u;
// A multiple of 4.
override TILE_K: u32 = 16u;
override VEC4: bool = false;

// conv2d.wgsl's Params (ConvParams on the host): one uniform block for both variants.
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
    // backward_weight: pixels per split, and the number of splits.
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
@group(0) @binding(6) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;
@group(0) @binding(14) var<storage, read> dy4: array<vec4<f32>>;

// The staged slices: tile_a[kk * TILE_M / 4 + m / 4][m % 4], tile_b[kk * TILE_N / 4 + n / 4][n % 4].
var<workgroup> tile_a: array<vec4<f32>, TILE_K * TILE_M / 4u>;
var<workgroup> tile_b: array<vec4<f32>, TILE_K * TILE_N / 4u>;

fn stage_a(m: u32, kk: u32, value: f32) {
    tile_a[kk * (TILE_M / 4u) + m / 4u][m % 4u] = value;
}

fn stage_b(kk: u32, n: u32, value: f32) {
    tile_b[kk * (TILE_N / 4u) + n / 4u][n % 4u] = value;
}

// acc[i] += A rows 4 ly + i times B columns 4 lx .. 4 lx + 3, over the staged slice.
fn multiply_slice(acc: ptr<function, array<vec4<f32>, 4>>, lx: u32, ly: u32) {
    for (var kk = 0u; kk < TILE_K; kk++) {
        let a = tile_a[kk * (TILE_M / 4u) + ly];
        let bv = tile_b[kk * (TILE_N / 4u) + lx];
        (*acc)[0] += a.x * bv;
        (*acc)[1] += a.y * bv;
        (*acc)[2] += a.z * bv;
        (*acc)[3] += a.w * bv;
    }
}

// The end of a slice: wait for the whole workgroup's staging, multiply, and wait again before the
// next slice overwrites the tiles. Called from workgroup-uniform control flow only.
fn multiply_staged(acc: ptr<function, array<vec4<f32>, 4>>, local: vec3<u32>) {
    workgroupBarrier();
    multiply_slice(acc, local.x, local.y);
    workgroupBarrier();
}

// Stores the register tile of a product whose rows are channels and whose columns are (image,
// pixel) pairs, into an NCHW tensor of `channels` planes of `pixels`: plus `bias` (per row of the
// tile), then ReLU if `relu`.
fn store_planes(acc: ptr<function, array<vec4<f32>, 4>>, bias: vec4<f32>, relu: bool, m0: u32, n0: u32,
                local: vec3<u32>, channels: u32, pixels: u32, columns: u32) {
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * local.y + i;
        if (m >= channels) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + 4u * local.x + j;
            if (n < columns) {
                var v = (*acc)[i][j] + bias[i];
                if (relu) {
                    v = max(v, 0.0);
                }
                y[((n / pixels) * channels + m) * pixels + n % pixels] = v;
            }
        }
    }
}

// x at image `img`, channel `ci`, row `iy`, column `ix` counted from the padded origin; zero in
// the padding (an unsigned coordinate below the origin wraps past the end).
fn x_padded(img: u32, ci: u32, iy: u32, ix: u32) -> f32 {
    let row = iy - p.pad_top;
    let col = ix - p.pad_left;
    if (row >= p.in_h || col >= p.in_w) {
        return 0.0;
    }
    return x[((img * p.in_c + ci) * p.in_h + row) * p.in_w + col];
}

// im2col(x)[k][n]: tap k = (ci, ky, kx) of output pixel n = (img, oy, ox); zero past the edges.
fn im2col(k: u32, n: u32) -> f32 {
    let taps = p.k_h * p.k_w;
    let pixels = p.out_h * p.out_w;
    if (k >= p.in_c * taps || n >= p.batch * pixels) {
        return 0.0;
    }
    let img = n / pixels;
    let oy = (n % pixels) / p.out_w;
    let ox = n % p.out_w;
    let ci = k / taps;
    let ky = (k % taps) / p.k_w;
    let kx = k % p.k_w;
    return x_padded(img, ci, oy * p.stride + ky, ox * p.stride + kx);
}

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u)
fn conv2d_mm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) local: vec3<u32>,
                     @builtin(local_invocation_index) lidx: u32) {
    let ckk = p.in_c * p.k_h * p.k_w;
    let pixels = p.out_h * p.out_w;
    let columns = p.batch * pixels;
    let n0 = (wid.x + wid.y * nwg.x) * TILE_N;
    if (n0 >= columns) {
        return;
    }
    let m0 = wid.z * TILE_M;
    let threads = TILE_M * TILE_N / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < ckk; k0 += TILE_K) {
        if (VEC4) {
            // Lanes along k: four consecutive weights of one output channel per load.
            for (var e = lidx; e < TILE_M * TILE_K / 4u; e += threads) {
                let m = e / (TILE_K / 4u);
                let kq = (e % (TILE_K / 4u)) * 4u;
                var v = vec4<f32>(0.0);
                if (m0 + m < p.out_c && k0 + kq < ckk) {
                    v = w4[((m0 + m) * ckk + k0 + kq) / 4u];
                }
                for (var c = 0u; c < 4u; c++) {
                    stage_a(m, kq + c, v[c]);
                }
            }
        } else {
            for (var e = lidx; e < TILE_M * TILE_K; e += threads) {
                let m = e / TILE_K;
                let kk = e % TILE_K;
                var v = 0.0;
                if (m0 + m < p.out_c && k0 + kk < ckk) {
                    v = w[(m0 + m) * ckk + k0 + kk];
                }
                stage_a(m, kk, v);
            }
        }
        // Lanes along pixels.
        for (var e = lidx; e < TILE_K * TILE_N; e += threads) {
            let kk = e / TILE_N;
            let n = e % TILE_N;
            stage_b(kk, n, im2col(k0 + kk, n0 + n));
        }
        multiply_staged(&acc, local);
    }
    var bias = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        bias[i] = b[min(m0 + 4u * local.y + i, p.out_c - 1u)];
    }
    store_planes(&acc, bias, p.relu != 0u, m0, n0, local, p.out_c, pixels, columns);
}

// dy at the output pixel that tap (ky, kx) of input pixel (iy, ix) came from, channel `co` of
// image `img`; zero where no output pixel took that tap (off the output, or between strides).
fn dy_reaching(img: u32, co: u32, iy: u32, ix: u32, ky: u32, kx: u32) -> f32 {
    // Unsigned: a tap below the padded origin wraps far past the output.
    let ty = iy + p.pad_top - ky;
    let tx = ix + p.pad_left - kx;
    let oy = ty / p.stride;
    let ox = tx / p.stride;
    if (ty % p.stride != 0u || tx % p.stride != 0u || oy >= p.out_h || ox >= p.out_w) {
        return 0.0;
    }
    return dy[((img * p.out_c + co) * p.out_h + oy) * p.out_w + ox];
}

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u)
fn conv2d_mm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) local: vec3<u32>,
                            @builtin(local_invocation_index) lidx: u32) {
    let taps = p.k_h * p.k_w;
    let depth = p.out_c * taps;
    let pixels = p.in_h * p.in_w;
    let columns = p.batch * pixels;
    let n0 = (wid.x + wid.y * nwg.x) * TILE_N;
    if (n0 >= columns) {
        return;
    }
    let m0 = wid.z * TILE_M;
    let threads = TILE_M * TILE_N / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
        // A(ci, (co, tap)) = w[co][ci][tap]; lanes along the taps.
        for (var e = lidx; e < TILE_M * TILE_K; e += threads) {
            let m = e / TILE_K;
            let kk = e % TILE_K;
            let ci = m0 + m;
            let k = k0 + kk;
            var v = 0.0;
            if (ci < p.in_c && k < depth) {
                v = w[((k / taps) * p.in_c + ci) * taps + k % taps];
            }
            stage_a(m, kk, v);
        }
        // B((co, tap), input pixel); lanes along pixels.
        for (var e = lidx; e < TILE_K * TILE_N; e += threads) {
            let kk = e / TILE_N;
            let n = e % TILE_N;
            let k = k0 + kk;
            let column = n0 + n;
            var v = 0.0;
            if (k < depth && column < columns) {
                let img = column / pixels;
                let iy = (column % pixels) / p.in_w;
                let ix = column % p.in_w;
                let tap = k % taps;
                v = dy_reaching(img, k / taps, iy, ix, tap / p.k_w, tap % p.k_w);
            }
            stage_b(kk, n, v);
        }
        multiply_staged(&acc, local);
    }
    store_planes(&acc, vec4<f32>(0.0), false, m0, n0, local, p.in_c, pixels, columns);
}

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u)
fn conv2d_mm_backward_weight(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(local_invocation_id) local: vec3<u32>,
                             @builtin(local_invocation_index) lidx: u32) {
    let ckk = p.in_c * p.k_h * p.k_w;
    let pixels = p.out_h * p.out_w;
    let reduction = p.batch * pixels;
    let n0 = wid.x * TILE_N;
    let m0 = wid.y * TILE_M;
    let begin = wid.z * p.split_len;
    let end = min(begin + p.split_len, reduction);
    let threads = TILE_M * TILE_N / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var r0 = begin; r0 < end; r0 += TILE_K) {
        // A(co, pixel r) = dy; lanes along the pixels.
        if (VEC4) {
            // out_h*out_w and r0 are multiples of 4: four pixels of one image per load.
            for (var e = lidx; e < TILE_M * TILE_K / 4u; e += threads) {
                let m = e / (TILE_K / 4u);
                let rq = (e % (TILE_K / 4u)) * 4u;
                let r = r0 + rq;
                var v = vec4<f32>(0.0);
                if (m0 + m < p.out_c && r < end) {
                    v = dy4[(((r / pixels) * p.out_c + m0 + m) * pixels + r % pixels) / 4u];
                }
                for (var c = 0u; c < 4u; c++) {
                    stage_a(m, rq + c, v[c]);
                }
            }
        } else {
            for (var e = lidx; e < TILE_M * TILE_K; e += threads) {
                let m = e / TILE_K;
                let kk = e % TILE_K;
                let r = r0 + kk;
                var v = 0.0;
                if (m0 + m < p.out_c && r < end) {
                    v = dy[((r / pixels) * p.out_c + m0 + m) * pixels + r % pixels];
                }
                stage_a(m, kk, v);
            }
        }
        // B(pixel r, tap column) = im2col(x)^T, and 1 in column ckk; lanes along the pixels.
        for (var e = lidx; e < TILE_K * TILE_N; e += threads) {
            let n = e / TILE_K;
            let kk = e % TILE_K;
            let r = r0 + kk;
            let column = n0 + n;
            var v = 0.0;
            if (r < end) {
                v = select(im2col(column, r), 1.0, column == ckk);
            }
            stage_b(kk, n, v);
        }
        multiply_staged(&acc, local);
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * local.y + i;
        if (m >= p.out_c) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + 4u * local.x + j;
            if (n <= ckk) {
                partial[(wid.z * p.out_c + m) * (ckk + 1u) + n] = acc[i][j];
            }
        }
    }
}
