//! Element-by-element ops across cores in fixed chunks: ReLU, dropout's counter-based masks (the
//! same mask as every backend for a seed and step) and Adam, with the formulas of
//! [`crate::reference`].

use rayon::prelude::*;

use crate::error::Result;
use crate::shape::{AdamConfig, DropoutConfig};

/// Elements per task.
const CHUNK: usize = 16 * 1024;

/// `y = max(x, 0)`.
pub fn relu(x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(0.0));
    });
}

/// `dx = dy where y > 0, else 0`: a ReLU's backward pass from its output.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (y, dy))| {
        dx.iter_mut().zip(y.iter().zip(dy)).for_each(|(dx, (&y, &g))| *dx = if y > 0.0 { g } else { 0.0 });
    });
}

/// `out = v * scale` where the mask of `config` keeps an element, else 0 (dropout's forward and
/// backward passes are the same map).
pub fn dropout(config: &DropoutConfig, v: &[f32], out: &mut [f32]) -> Result<()> {
    config.validate(v.len())?;
    let scale = config.scale();
    out.par_chunks_mut(CHUNK).zip(v.par_chunks(CHUNK)).enumerate().for_each(|(c, (out, v))| {
        for (i, (o, &v)) in out.iter_mut().zip(v).enumerate() {
            *o = if config.keeps((c * CHUNK + i) as u32) { v * scale } else { 0.0 };
        }
    });
    Ok(())
}

/// One Adam step of `param` from `grad` (Adam's moments `m`, `v`), as
/// [`crate::reference::adam::step`] in f32.
pub fn adam(cfg: &AdamConfig, step: u64, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) -> Result<()> {
    AdamConfig::check_lengths(param.len(), &[("grad", grad.len()), ("m", m.len()), ("v", v.len())])?;
    let alpha = cfg.alpha(step)? as f32;
    let one_minus = |beta: f32| (1.0 - f64::from(beta)) as f32;
    let (one_minus_beta1, one_minus_beta2) = (one_minus(cfg.beta1), one_minus(cfg.beta2));
    let (lr, weight_decay, epsilon) = (cfg.lr, cfg.weight_decay, cfg.epsilon);
    let moments = m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK));
    param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).zip(moments).for_each(|((param, grad), (m, v))| {
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(m).zip(v) {
            let decayed = *p - *p * weight_decay * lr;
            *m += (g - *m) * one_minus_beta1;
            *v += (g * g - *v) * one_minus_beta2;
            *p = decayed - (*m * alpha) / (v.sqrt() + epsilon);
        }
    });
    Ok(())
}
