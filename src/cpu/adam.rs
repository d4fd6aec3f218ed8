//! Adam with optional decoupled weight decay (`shaders/adam.wgsl`), step for step as Keras 3 does.

use super::{Real, real};
use crate::error::{Error, Result};
use crate::shape::AdamConfig;

/// The bias-corrected step size of step `step` (1-based, as Keras's `iterations + 1`), in f64:
/// `lr * sqrt(1 - beta2^step) / (1 - beta1^step)`.
pub fn adam_alpha(cfg: &AdamConfig, step: u64) -> Result<f64> {
    if step == 0 {
        return Err(Error::Invalid("adam: steps count from 1 (step 0 divides by 1 - beta1^0 = 0)".into()));
    }
    // powf: exact for the small integer steps where it matters, and no i32 overflow past 2^31.
    let t = step as f64;
    let (beta1, beta2) = (cfg.beta1 as f64, cfg.beta2 as f64);
    Ok(cfg.lr as f64 * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t)))
}

/// Fails unless every slice has `len` elements.
pub fn check_lengths(len: usize, others: &[(&str, usize)]) -> Result<()> {
    for &(what, got) in others {
        if got != len {
            return Err(Error::shape(
                format!("adam {what}"),
                format!("{len} elements, as the parameters"),
                format!("{got} elements"),
            ));
        }
    }
    Ok(())
}

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
pub fn adam_step<T: Real>(
    cfg: &AdamConfig,
    step: u64,
    param: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
) -> Result<()> {
    check_lengths(param.len(), &[("grad", grad.len()), ("m", m.len()), ("v", v.len())])?;
    let alpha: T = real(adam_alpha(cfg, step)?);
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
