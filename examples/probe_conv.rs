use std::time::Instant;
use wgcnn::gpu::kernel::{Access::*, KernelSpec, Shader};
use wgcnn::gpu::{DeviceChoice, Gpu, GpuTensor};
static SHADER: Shader = wgcnn::shader!("conv2d.wgsl");
static FORWARD: KernelSpec = KernelSpec { shader: &SHADER, entry: "conv2d_forward", bindings: &[(1, Read), (2, Read), (3, Read), (4, ReadWrite)] };
fn main() {
    let gpu = Gpu::new(&DeviceChoice::Auto).unwrap();
    let batch: u32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(16);
    let (cin, h, cout) = (32u32, 63u32, 64u32); let oh = h - 2;
    let params: [u32; 16] = [batch, cin, h, h, cout, oh, oh, 3, 3, 1, 0, 0, 1, 0, 0, 0];
    let t = |n: u32| GpuTensor::from_slice(&gpu, "t", &[n as usize], &(0..n).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<f32>>()).unwrap();
    let (x, w, b, y) = (t(batch*cin*h*h), t(cout*cin*9), t(cout), t(batch*cout*oh*oh));
    let flops = 2.0 * (batch * cout * oh * oh) as f64 * (cin * 9) as f64;
    for variant in std::env::args().skip(2) {
        let v: Vec<f64> = variant.split(',').map(|s| s.parse().unwrap()).collect();
        let (wg, rows, padded) = (v[0], v[1], v[2]);
        let k = gpu.kernel(&FORWARD, &[("WG", wg), ("ROWS", rows), ("PADDED", padded)]).unwrap();
        let cols = batch * oh * oh;
        let g = wgcnn::gpu::grid(cols.div_ceil(wg as u32));
        let d = gpu.dispatch(&k, &params, &[&x, &w, &b, &y], [g[0], g[1], cout.div_ceil(rows as u32)]).unwrap();
        gpu.run(&[&d]).unwrap();
        let mut best = f64::MAX;
        for _ in 0..3 { let t0 = Instant::now(); gpu.run(&[&d]).unwrap(); best = best.min(t0.elapsed().as_secs_f64()); }
        println!("{variant}: {:.3} s  {:.2} GFLOP/s", best, flops / best / 1e9);
    }
}
