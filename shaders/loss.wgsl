// Classification losses from logits: sigmoid + binary cross-entropy (classes == 1) and
// softmax + categorical cross-entropy (classes >= 2), with Keras class weights and
// SUM_OVER_BATCH_SIZE reduction; and the probabilities for inference.
//
// Layout: logits and dlogits [batch, classes] row-major; labels [batch] u32 class indices (for
// BCE the target t is the label, 0 or 1); class_weights [max(classes, 2)] (for BCE w[0] weighs
// t = 0 and w[1] weighs t = 1); stats [4].
// Bindings (group 0):
//   cross_entropy: 0 params, 1 logits (read), 2 labels (read), 3 class_weights (read),
//                  4 dlogits (read_write), 5 stats (read_write)
//   probabilities: 0 params, 1 logits (read), 6 probs (read_write)
//
// cross_entropy computes, with w_i = class_weights[label_i] and n the rows counted (those with a
// label in range: a short last batch is padded with out-of-range labels):
//   loss   = sum_i w_i * loss_i / n
//   dlogits[i, :] = w_i * d loss_i / d logits[i, :] / n     (the gradient of `loss`)
//   stats  = [loss, correct predictions, n, rows ignored for an out-of-range label]
// BCE:  loss_i = max(z, 0) - z t + log1p(exp(-|z|)),  dz = sigmoid(z) - t;
//       predicted class = (z > 0): z = 0, probability exactly 1/2, counts as class 0 as Keras's
//       `binary_accuracy` (p > 0.5) does.
// CCE:  loss_i = logsumexp(z) - z[label] with the row max subtracted first,
//       dz_j = softmax(z)_j - [j == label]; predicted class = argmax, the first maximum wins.
// A label >= classes (> 1 for BCE) cannot be checked on the host (it lives in a buffer): the row is
// ignored -- zero loss, zero gradient, not correct -- counted in stats[3], and nothing is read out of
// bounds. The mean divides by the rows counted, as Keras's SUM_OVER_BATCH_SIZE does for a short
// batch (at least 1, so a batch of padding alone gives a zero loss).
//
// One invocation: cross_entropy, rows lid, lid + WG, ... in that fixed order, first counting the
// ignored rows, then accumulating its partial sums; each followed by a tree reduction in workgroup
// memory (WG must be a power of two), so the stats are the same bits run after run.
// probabilities: one row.
// Dispatch: cross_entropy one workgroup of WG; probabilities ceil(batch / WG) workgroups spread by
// `grid()`, the linear id rebuilt from num_workgroups and bounds-checked.

override WG: u32 = 64;

struct Params {
    batch: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> class_weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> probs: array<f32>;

var<workgroup> partial_loss: array<f32, WG>;
var<workgroup> partial_correct: array<u32, WG>;
var<workgroup> partial_ignored: array<u32, WG>;

// log(1 + x) for x in [0, 1], accurate where log(1.0 + x) loses x's low bits (x << 1):
// log1p(x) = 2 atanh(s) with s = x / (2 + x) <= 1/3, a series in s^2 <= 1/9 whose first omitted
// term is below 1e-8 relative.
fn log1p_unit(x: f32) -> f32 {
    let s = x / (2.0 + x);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0
        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    return 2.0 * s * series;
}

// sigmoid(z) from exp(-|z|), which never overflows.
fn sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn row_max(row: u32) -> f32 {
    let base = row * params.classes;
    var m = logits[base];
    for (var j = 1u; j < params.classes; j++) {
        m = max(m, logits[base + j]);
    }
    return m;
}

// sum_j exp(z_j - max): at least 1, so its log is finite.
fn row_exp_sum(row: u32, m: f32) -> f32 {
    let base = row * params.classes;
    var sum = 0.0;
    for (var j = 0u; j < params.classes; j++) {
        sum += exp(logits[base + j] - m);
    }
    return sum;
}

// One valid row's unweighted loss and whether its prediction is correct; writes its gradient.
struct RowResult {
    loss: f32,
    correct: u32,
}

fn bce_row(row: u32, label: u32, scale: f32) -> RowResult {
    let z = logits[row];
    let t = f32(label);
    dlogits[row] = (sigmoid(z) - t) * scale;
    let loss = max(z, 0.0) - z * t + log1p_unit(exp(-abs(z)));
    return RowResult(loss, u32(u32(z > 0.0) == label));
}

fn cce_row(row: u32, label: u32, scale: f32) -> RowResult {
    let base = row * params.classes;
    let m = row_max(row);
    let sum = row_exp_sum(row, m);
    var argmax = 0u;
    var best = logits[base];
    for (var j = 0u; j < params.classes; j++) {
        let z = logits[base + j];
        if (z > best) {
            best = z;
            argmax = j;
        }
        let one_hot = select(0.0, 1.0, j == label);
        dlogits[base + j] = (exp(z - m) / sum - one_hot) * scale;
    }
    let loss = (m - logits[base + label]) + log(sum);
    return RowResult(loss, u32(argmax == label));
}

@compute @workgroup_size(WG)
fn cross_entropy(@builtin(local_invocation_index) lid: u32) {
    let binary = params.classes == 1u;
    let label_limit = max(params.classes, 2u);
    // The rows counted, before any gradient is scaled by them.
    var ignored = 0u;
    for (var row = lid; row < params.batch; row += WG) {
        ignored += u32(labels[row] >= label_limit);
    }
    partial_ignored[lid] = ignored;
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid < stride) {
            partial_ignored[lid] += partial_ignored[lid + stride];
        }
    }
    workgroupBarrier();
    let total_ignored = partial_ignored[0];
    let counted = f32(max(params.batch - total_ignored, 1u));
    var loss_sum = 0.0;
    var correct = 0u;
    for (var row = lid; row < params.batch; row += WG) {
        let label = labels[row];
        if (label >= label_limit) {
            for (var j = 0u; j < params.classes; j++) {
                dlogits[row * params.classes + j] = 0.0;
            }
            continue;
        }
        let weight = class_weights[label];
        let scale = weight / counted;
        var result: RowResult;
        if (binary) {
            result = bce_row(row, label, scale);
        } else {
            result = cce_row(row, label, scale);
        }
        loss_sum += weight * result.loss;
        correct += result.correct;
    }
    partial_loss[lid] = loss_sum;
    partial_correct[lid] = correct;
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid < stride) {
            partial_loss[lid] += partial_loss[lid + stride];
            partial_correct[lid] += partial_correct[lid + stride];
        }
    }
    if (lid == 0u) {
        stats[0] = partial_loss[0] / counted;
        stats[1] = f32(partial_correct[0]);
        stats[2] = f32(params.batch - total_ignored);
        stats[3] = f32(total_ignored);
    }
}

@compute @workgroup_size(WG)
fn probabilities(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = (wid.x + wid.y * nwg.x) * WG + lid;
    if (row >= params.batch) {
        return;
    }
    if (params.classes == 1u) {
        probs[row] = sigmoid(logits[row]);
        return;
    }
    let base = row * params.classes;
    let m = row_max(row);
    let sum = row_exp_sum(row, m);
    for (var j = 0u; j < params.classes; j++) {
        probs[base + j] = exp(logits[base + j] - m) / sum;
    }
}
