//! ReLU.

use super::Real;

/// `y = max(x, 0)`.
pub fn relu<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| v.max(T::zero())).collect()
}

/// `dx = dy` where the forward output `y` is positive, else 0.
pub fn relu_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    y.iter().zip(dy).map(|(&y, &g)| if y > T::zero() { g } else { T::zero() }).collect()
}
