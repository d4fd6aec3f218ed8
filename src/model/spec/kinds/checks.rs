//! What the kinds' shape inference checks an input with.

/// Every tensor's elements must be indexable by the u32 the kernels use.
const MAX_TENSOR_ELEMENTS: usize = u32::MAX as usize;

/// `input` as channels, height, width, or why `what` cannot take it.
pub(super) fn spatial(input: &[usize], what: &str) -> Result<(usize, usize, usize), String> {
    match *input {
        [channels, height, width] => Ok((channels, height, width)),
        _ => Err(format!(
            "{what} needs a channels x height x width input, got the flat {} (it cannot follow `f` or a dense layer)",
            dims(input)
        )),
    }
}

/// Elements of `shape`, or why it is too large.
pub(super) fn checked_elements(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |product, &d| product.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| format!("a tensor of shape {} is over the 2^32 elements the kernels index", dims(shape)))
}

/// `16x254x254`.
pub(super) fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}
