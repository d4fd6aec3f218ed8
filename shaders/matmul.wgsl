// Strided matrix product C = A @ B (+ bias) (then ReLU), and column sums of B: every pass of a
// dense layer without transposing copies.
//
// Layout: A is M x K, B is K x N, read through strides so that a transposed or row-major operand
// is the same kernel: A(m, k) = a[m * a_row_stride + k * a_col_stride],
// B(k, n) = b[k * b_row_stride + n * b_col_stride]. C is M x N row-major; bias has N elements.
// Bindings (group 0):
//   matmul, matmul_tiled: 0 params, 1 a (read), 2 b (read), 3 bias (read), 4 c (read_write)
//     C(m, n) = sum_k A(m, k) B(k, n), k ascending; then + bias[n] if flags has HAS_BIAS, then
//     max(., 0) if flags has RELU. Without HAS_BIAS the host binds A at 3 and it is never read.
//   column_sum: 0 params, 2 b (read), 4 c (read_write)
//     c[n] = sum_k B(k, n), k ascending (the bias gradient: sum of dy over the batch).
// Every sum runs over k in ascending order in one invocation (no atomics, no split reductions),
// so the results are the same run after run.
//
// matmul (for software adapters such as lavapipe, where an invocation is one SIMD lane):
//   One invocation: column n = wid.x * WG + lid of ROWS (<= 8) consecutive rows from
//   m0 = wid.y * ROWS, held in ROWS scalar accumulators. The A operand's address depends only on
//   the workgroup and the loop counter (one scalar load broadcast to all lanes); B is one load per
//   invocation per k.
//   Rows past M and columns past N read a clamped (valid) element and store nothing, so the loop
//   stays uniform.
//   Dispatch: (ceil(N / WG), ceil(M / ROWS), 1) workgroups of WG invocations.
// matmul_tiled (for hardware GPUs):
//   A workgroup of TILE x TILE invocations computes a BLOCK x BLOCK block of C (BLOCK = 4 TILE),
//   staging TILE-deep slices of A and B in workgroup memory (zero-filled past the edges); one
//   invocation holds a 4 x 4 register tile: rows ly + i TILE, columns lx + j TILE.
//   Dispatch: (ceil(N / BLOCK), ceil(M / BLOCK), 1) workgroups.
// column_sum:
//   One invocation: one column n. Dispatch: ceil(N / WG) workgroups of WG, spread over x and y
//   by `grid()`; the linear id is rebuilt from num_workgroups and bounds-checked.

override WG: u32 = 64;
override ROWS: u32 = 8;
override TILE: u32 = 16;

// Upper bound of ROWS (the host checks it). `matmul` spells its MAX_ROWS accumulators out, each
// behind `ROWS > i`, which pipeline creation folds to a constant: a loop over an accumulator array
// instead kept the array in memory on lavapipe and ran 1.5x slower; 16 rows were no faster.
const MAX_ROWS: u32 = 8u;
// Side of one invocation's register tile in matmul_tiled.
const REG: u32 = 4u;

const HAS_BIAS: u32 = 1u;
const RELU: u32 = 2u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a_row_stride: u32,
    a_col_stride: u32,
    b_row_stride: u32,
    b_col_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// The epilogue shared by both matmul variants: bias, ReLU, store (in bounds only).
fn store(m: u32, n: u32, sum: f32) {
    if (m >= params.m || n >= params.n) {
        return;
    }
    var v = sum;
    if ((params.flags & HAS_BIAS) != 0u) {
        v += bias[n];
    }
    if ((params.flags & RELU) != 0u) {
        v = max(v, 0.0);
    }
    c[m * params.n + n] = v;
}

// Offset in A of row m0 + i, clamped to the last row: workgroup-uniform.
fn a_row_offset(m0: u32, i: u32) -> u32 {
    return min(m0 + i, params.m - 1u) * params.a_row_stride;
}

@compute @workgroup_size(WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = wid.x * WG + lid;
    let b_col = min(n, params.n - 1u) * params.b_col_stride;
    let m0 = wid.y * ROWS;
    let a0 = a_row_offset(m0, 0u);
    let a1 = a_row_offset(m0, 1u);
    let a2 = a_row_offset(m0, 2u);
    let a3 = a_row_offset(m0, 3u);
    let a4 = a_row_offset(m0, 4u);
    let a5 = a_row_offset(m0, 5u);
    let a6 = a_row_offset(m0, 6u);
    let a7 = a_row_offset(m0, 7u);
    var acc0 = 0.0;
    var acc1 = 0.0;
    var acc2 = 0.0;
    var acc3 = 0.0;
    var acc4 = 0.0;
    var acc5 = 0.0;
    var acc6 = 0.0;
    var acc7 = 0.0;
    for (var k = 0u; k < params.k; k++) {
        let b_val = b[k * params.b_row_stride + b_col];
        let a_col = k * params.a_col_stride;
        acc0 += a[a0 + a_col] * b_val;
        if (ROWS > 1u) { acc1 += a[a1 + a_col] * b_val; }
        if (ROWS > 2u) { acc2 += a[a2 + a_col] * b_val; }
        if (ROWS > 3u) { acc3 += a[a3 + a_col] * b_val; }
        if (ROWS > 4u) { acc4 += a[a4 + a_col] * b_val; }
        if (ROWS > 5u) { acc5 += a[a5 + a_col] * b_val; }
        if (ROWS > 6u) { acc6 += a[a6 + a_col] * b_val; }
        if (ROWS > 7u) { acc7 += a[a7 + a_col] * b_val; }
    }
    let sums = array<f32, MAX_ROWS>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    for (var r = 0u; r < ROWS; r++) {
        store(m0 + r, n, sums[r]);
    }
}

// Slices of A (BLOCK rows x TILE deep, row-major) and B (TILE deep x BLOCK columns, row-major).
var<workgroup> a_tile: array<f32, TILE * TILE * REG>;
var<workgroup> b_tile: array<f32, TILE * TILE * REG>;

@compute @workgroup_size(TILE, TILE)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let block = TILE * REG;
    let m0 = wid.y * block;
    let n0 = wid.x * block;
    let lx = local.x;
    let ly = local.y;
    var acc: array<array<f32, REG>, REG>;
    for (var k0 = 0u; k0 < params.k; k0 += TILE) {
        // Each invocation stages REG elements of each slice; zero past the edges of A and B.
        for (var i = 0u; i < REG; i++) {
            let row = ly + i * TILE;
            let m = m0 + row;
            let ka = k0 + lx;
            var a_val = 0.0;
            if (m < params.m && ka < params.k) {
                a_val = a[m * params.a_row_stride + ka * params.a_col_stride];
            }
            a_tile[row * TILE + lx] = a_val;
            let col = lx + i * TILE;
            let n = n0 + col;
            let kb = k0 + ly;
            var b_val = 0.0;
            if (n < params.n && kb < params.k) {
                b_val = b[kb * params.b_row_stride + n * params.b_col_stride];
            }
            b_tile[ly * block + col] = b_val;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk++) {
            var b_reg: array<f32, REG>;
            for (var j = 0u; j < REG; j++) {
                b_reg[j] = b_tile[kk * block + lx + j * TILE];
            }
            for (var i = 0u; i < REG; i++) {
                let a_val = a_tile[(ly + i * TILE) * TILE + kk];
                for (var j = 0u; j < REG; j++) {
                    acc[i][j] += a_val * b_reg[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < REG; i++) {
        for (var j = 0u; j < REG; j++) {
            store(m0 + ly + i * TILE, n0 + lx + j * TILE, acc[i][j]);
        }
    }
}

@compute @workgroup_size(WG)
fn column_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let n = (wid.x + wid.y * nwg.x) * WG + lid;
    if (n >= params.n) {
        return;
    }
    var sum = 0.0;
    for (var k = 0u; k < params.k; k++) {
        sum += b[k * params.b_row_stride + n * params.b_col_stride];
    }
    c[n] = sum;
}
