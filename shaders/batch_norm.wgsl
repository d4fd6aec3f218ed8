// Batch normalisation: training forward (batch statistics), inference forward (running
// statistics) and the training-mode backward pass.
//
// Layout: x, y, dy, dx are [batch, channels, spatial] row-major (spatial = H*W after a convolution,
// 1 after a dense layer); gamma, beta, the running and the saved statistics, dgamma and dbeta are
// [channels]. In training, rows[0] of the batch are real images and the rest padding (a short last
// batch): M = rows[0] * spatial values share one channel's statistics, and the padding rows' y and
// dx are 0, so they add nothing to any gradient (a batch of rows[0], as the CPU reference computes
// it). rows[0] is clamped to [1, batch].
// Bindings (group 0; binding 0 is the params uniform). A per-channel tensor that one pass writes
// and a later pass reads has a read_write binding for the writer and a read one for the reader:
//    1 x              read        every entry point
//    2 gamma          read        bn_apply_batch_stats, bn_inference, bn_input_grad
//    3 beta           read        bn_apply_batch_stats, bn_inference
//    4 running_mean   read_write  bn_batch_stats (updated in place)
//    5 running_var    read_write  bn_batch_stats (updated in place)
//    6 mean_out       read_write  bn_batch_stats (the saved batch mean)
//    7 inv_std_out    read_write  bn_batch_stats (the saved 1 / sqrt(batch var + epsilon))
//    8 y              read_write  bn_apply_batch_stats, bn_inference
//    9 saved_mean     read        bn_apply_batch_stats, bn_param_grads, bn_input_grad
//   10 saved_inv_std  read        bn_apply_batch_stats, bn_param_grads, bn_input_grad
//   11 frozen_mean    read        bn_inference (the running mean)
//   12 frozen_var     read        bn_inference (the running variance)
//   13 dy             read        bn_param_grads, bn_input_grad
//   14 dgamma_out     read_write  bn_param_grads
//   15 dbeta_out      read_write  bn_param_grads
//   16 dgamma         read        bn_input_grad
//   17 dbeta          read        bn_input_grad
//   18 dx             read_write  bn_input_grad
//   19 rows           read        bn_batch_stats, bn_apply_batch_stats, bn_param_grads, bn_input_grad
//
// Per-channel reductions (bn_batch_stats, bn_param_grads): one workgroup per channel (spread over
// x and y by `grid()`), WG invocations (a power of two). Invocation `lid` accumulates positions
// lid, lid + WG, lid + 2 WG, ... of the channel's M values in that order, then the workgroup adds
// the WG partial sums by a fixed tree in workgroup memory: the same bits on every run. Adjacent
// invocations read adjacent addresses. The variance is a second pass, mean((x - mean)^2), which
// does not cancel the way E[x^2] - E[x]^2 does.
// At Model A's first layer (32x16x254x254) that is 16 workgroups of 2M values: right for lavapipe's
// two threads, but a real GPU would want each channel split over many workgroups (partial sums plus
// a second pass); not built yet.
//
// Element-wise passes (bn_apply_batch_stats, bn_inference, bn_input_grad): one invocation per
// element, ceil(len / WG) workgroups spread over x and y by `grid()`; the linear id is rebuilt from
// num_workgroups and bounds-checked.

override WG: u32 = 256;

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> inv_std_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(10) var<storage, read> saved_inv_std: array<f32>;
@group(0) @binding(11) var<storage, read> frozen_mean: array<f32>;
@group(0) @binding(12) var<storage, read> frozen_var: array<f32>;
@group(0) @binding(13) var<storage, read> dy: array<f32>;
@group(0) @binding(14) var<storage, read_write> dgamma_out: array<f32>;
@group(0) @binding(15) var<storage, read_write> dbeta_out: array<f32>;
@group(0) @binding(16) var<storage, read> dgamma: array<f32>;
@group(0) @binding(17) var<storage, read> dbeta: array<f32>;
@group(0) @binding(18) var<storage, read_write> dx: array<f32>;
@group(0) @binding(19) var<storage, read> rows: array<u32>;

var<workgroup> partial: array<f32, WG>;

// ---- per-channel reductions ----

// One of a channel's M values: the m-th in (batch, spatial) order, as (n, s) so that moving on
// by WG needs no division per value.
struct Position {
    m: u32,
    n: u32,
    s: u32,
}

fn first_position(lid: u32) -> Position {
    return Position(lid, lid / params.spatial, lid % params.spatial);
}

fn next_position(p: Position) -> Position {
    var n = p.n + WG / params.spatial;
    var s = p.s + WG % params.spatial;
    if (s >= params.spatial) {
        s -= params.spatial;
        n += 1u;
    }
    return Position(p.m + WG, n, s);
}

fn index_of(p: Position, c: u32) -> u32 {
    return (p.n * params.channels + c) * params.spatial + p.s;
}

// The workgroup's sum of `value` over its invocations, by a fixed tree. Call from uniform control
// flow; every invocation gets the total.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Everyone has read the total before the next call overwrites it.
    workgroupBarrier();
    return total;
}

fn channel_of_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The real rows of a training batch, at least 1 and at most the batch.
fn real_rows() -> u32 {
    return clamp(rows[0], 1u, params.batch);
}

// Batch mean and biased variance of channel c; saves mean and 1/sqrt(var + eps) for the backward
// pass and moves the running statistics towards them.
@compute @workgroup_size(WG)
fn bn_batch_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = channel_of_workgroup(wid, nwg);
    if (c >= params.channels) {
        return;
    }
    let count = real_rows() * params.spatial;
    var sum = 0.0;
    for (var p = first_position(lid); p.m < count; p = next_position(p)) {
        sum += x[index_of(p, c)];
    }
    let mean = workgroup_sum(lid, sum) / f32(count);
    var squares = 0.0;
    for (var p = first_position(lid); p.m < count; p = next_position(p)) {
        let d = x[index_of(p, c)] - mean;
        squares += d * d;
    }
    let variance = workgroup_sum(lid, squares) / f32(count);
    if (lid == 0u) {
        mean_out[c] = mean;
        inv_std_out[c] = 1.0 / sqrt(variance + params.epsilon);
        let keep = params.momentum;
        running_mean[c] = keep * running_mean[c] + (1.0 - keep) * mean;
        running_var[c] = keep * running_var[c] + (1.0 - keep) * variance;
    }
}

// dbeta[c] = sum(dy), dgamma[c] = sum(dy * xhat) over channel c, xhat recomputed from x and the
// saved statistics.
@compute @workgroup_size(WG)
fn bn_param_grads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = channel_of_workgroup(wid, nwg);
    if (c >= params.channels) {
        return;
    }
    let count = real_rows() * params.spatial;
    let mean = saved_mean[c];
    let inv_std = saved_inv_std[c];
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var p = first_position(lid); p.m < count; p = next_position(p)) {
        let i = index_of(p, c);
        sum_dy += dy[i];
        sum_dy_xhat += dy[i] * (x[i] - mean) * inv_std;
    }
    let total_dy = workgroup_sum(lid, sum_dy);
    let total_dy_xhat = workgroup_sum(lid, sum_dy_xhat);
    if (lid == 0u) {
        dbeta_out[c] = total_dy;
        dgamma_out[c] = total_dy_xhat;
    }
}

// ---- element-wise passes ----

fn element_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn channel_of_element(i: u32) -> u32 {
    return (i / params.spatial) % params.channels;
}

fn element_count() -> u32 {
    return params.batch * params.channels * params.spatial;
}

// Whether element i belongs to a padding row of a training batch.
fn is_padding(i: u32) -> bool {
    return i >= real_rows() * params.channels * params.spatial;
}

// y = gamma * (x - mean) * inv_std + beta with the batch statistics bn_batch_stats saved; 0 on
// padding rows.
@compute @workgroup_size(WG)
fn bn_apply_batch_stats(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = element_id(wid, nwg, lid);
    if (i < element_count()) {
        let c = channel_of_element(i);
        y[i] = select(gamma[c] * (x[i] - saved_mean[c]) * saved_inv_std[c] + beta[c], 0.0, is_padding(i));
    }
}

// y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
@compute @workgroup_size(WG)
fn bn_inference(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element_id(wid, nwg, lid);
    if (i < element_count()) {
        let c = channel_of_element(i);
        let inv_std = 1.0 / sqrt(frozen_var[c] + params.epsilon);
        y[i] = gamma[c] * (x[i] - frozen_mean[c]) * inv_std + beta[c];
    }
}

// dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma), with dgamma, dbeta from
// bn_param_grads; 0 on padding rows.
@compute @workgroup_size(WG)
fn bn_input_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element_id(wid, nwg, lid);
    if (i < element_count()) {
        let c = channel_of_element(i);
        let count = f32(real_rows() * params.spatial);
        let inv_std = saved_inv_std[c];
        let xhat = (x[i] - saved_mean[c]) * inv_std;
        let grad = gamma[c] * inv_std / count * (count * dy[i] - dbeta[c] - xhat * dgamma[c]);
        dx[i] = select(grad, 0.0, is_padding(i));
    }
}
