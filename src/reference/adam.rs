//! Adam with optional decoupled weight decay (`shaders/adam.wgsl`), step for step as Keras 3 does.

use super::{Real, real};
use crate::error::Result;
use crate::shape::AdamConfig;

/// One Adam step (step counts from 1) on flat `param`, with its gradient `grad` and moments `m`,
/// `v` (zeros before step 1), updated in place. For each element, in this order and with the
/// same f32 operations as the kernel:
///
/// ```text
/// p = p - p * weight_decay * lr          (decoupled weight decay, before the update, as Keras)
/// m = m + (g - m) * (1 - beta1)
/// v = v + (g * g - v) * (1 - beta2)
/// p = p - (m * alpha) / (sqrt(v) + epsilon)      alpha = adam_alpha(cfg, step)
/// ```
/// `1 - beta1`, `1 - beta2` and `alpha` are computed in f64 and rounded once.
pub fn step<T: Real>(cfg: &AdamConfig, step: u64, param: &mut [T], grad: &[T], m: &mut [T], v: &mut [T]) -> Result<()> {
    AdamConfig::check_lengths(param.len(), &[("grad", grad.len()), ("m", m.len()), ("v", v.len())])?;
    let alpha: T = real(cfg.alpha(step)?);
    let one_minus_beta1: T = real(1.0 - cfg.beta1 as f64);
    let one_minus_beta2: T = real(1.0 - cfg.beta2 as f64);
    let (lr, weight_decay, epsilon): (T, T, T) =
        (real(cfg.lr as f64), real(cfg.weight_decay as f64), real(cfg.epsilon as f64));
    for i in 0..param.len() {
        let g = grad[i];
        let mut p = param[i];
        p = p - p * weight_decay * lr;
        m[i] = m[i] + (g - m[i]) * one_minus_beta1;
        v[i] = v[i] + (g * g - v[i]) * one_minus_beta2;
        param[i] = p - (m[i] * alpha) / (v[i].sqrt() + epsilon);
    }
    Ok(())
}
