//! Explaining a prediction: where in the image the model looked for the class it was asked about.
//!
//! Both backends run the model in inference mode (no dropout, batch norm on its running
//! statistics), seed the backward pass with the gradient of the class score w.r.t. the logits (a
//! one-hot row per image) and run the same backward passes as training down to the input, without
//! any parameter gradient. From that pass:
//! - **saliency**: `max over channels |d score / d input|` at every pixel (Simonyan et al. 2013);
//! - **Grad-CAM** (Selvaraju et al. 2017) on the last convolution layer's output `A` (after its
//!   fused ReLU, if any): channel weights `alpha_k = mean over positions of d score / d A_k`, the
//!   map `ReLU(sum_k alpha_k A_k)`, upsampled to the image and normalised to [0, 1].
//!
//! The class score is the logit of the class before the output activation; for a one-output
//! sigmoid model, class 1's score is the logit and class 0's is minus the logit.
//!
//! The reductions from the backward pass's tensors to the maps ([`saliency`], [`grad_cam`]) run on
//! the host, in this module, for both backends alike.

use std::str::FromStr;

use image::{Rgb, RgbImage};

use super::spec::{InputShape, LayerInfo};
use crate::reference::loss;
use crate::shape::LossShape;
use crate::{Error, Result};

/// Why a model predicted what it did, for one image and one class.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The class explained.
    pub class: u32,
    /// The class score: its logit (for a one-output sigmoid model, the logit for class 1 and minus
    /// the logit for class 0). The maps are gradients of this number.
    pub score: f32,
    /// The model's probability of every class (for a sigmoid model: `[1 - p, p]`).
    pub probabilities: Vec<f32>,
    /// The image's height and width: both maps are `height * width` values, row-major.
    pub height: usize,
    pub width: usize,
    /// `max over channels |d score / d pixel|`, unnormalised (see [`normalise_to_unit`]).
    pub saliency: Vec<f32>,
    /// The Grad-CAM map on the last convolution layer, upsampled to the image and normalised to
    /// [0, 1] (see [`grad_cam`]); None when the model has no convolution layer.
    pub grad_cam: Option<Vec<f32>>,
}

impl Explanation {
    /// The map `method` draws, in [0, 1]: Grad-CAM as computed, saliency normalised by its
    /// largest value. None for Grad-CAM of a model without a convolution layer.
    pub fn heat(&self, method: ExplainMethod) -> Option<Vec<f32>> {
        match method {
            ExplainMethod::GradCam => self.grad_cam.clone(),
            ExplainMethod::Saliency => Some(normalise_to_unit(&self.saliency)),
        }
    }
}

/// Which map shows where a model looked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExplainMethod {
    /// Grad-CAM on the last convolution layer: coarse regions that raise the class score.
    #[default]
    GradCam,
    /// The input gradient's size at each pixel: fine detail, noisier.
    Saliency,
}

impl ExplainMethod {
    /// As on the command line and in file names: `gradcam` or `saliency`.
    pub fn name(self) -> &'static str {
        match self {
            ExplainMethod::GradCam => "gradcam",
            ExplainMethod::Saliency => "saliency",
        }
    }

    /// As people write it: Grad-CAM or saliency.
    pub fn title(self) -> &'static str {
        match self {
            ExplainMethod::GradCam => "Grad-CAM",
            ExplainMethod::Saliency => "saliency",
        }
    }
}

impl FromStr for ExplainMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "gradcam" | "grad-cam" => Ok(ExplainMethod::GradCam),
            "saliency" => Ok(ExplainMethod::Saliency),
            _ => Err(format!("unknown method {s:?}: expected gradcam or saliency")),
        }
    }
}

/// A model that can explain its predictions (the GPU model and both CPU models, native and reference).
pub trait Explain {
    /// Explains the score of `classes[i]` for image `i` of `images` (NCHW f32, one image per class
    /// given; any number of them). Changes nothing the model keeps: training continues as if the
    /// call had not happened. Fails on a wrong number of values or a class out of range.
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>>;
}

/// The number of images of a request, after checking it: one image of `input` per class, each
/// class below `class_count`.
pub(crate) fn check_request(input: InputShape, class_count: usize, images: &[f32], classes: &[u32]) -> Result<usize> {
    let n = classes.len();
    if images.len() != n * input.elements() {
        return Err(Error::shape(
            "explain images",
            format!("{n} images of {input} = {} values (one image per class given)", n * input.elements()),
            format!("{} values", images.len()),
        ));
    }
    if let Some((i, class)) = classes.iter().enumerate().find(|&(_, &c)| c as usize >= class_count) {
        return Err(Error::Invalid(format!(
            "explain: class {class} of image {i} is out of range: the model has {class_count} classes (0 to {})",
            class_count - 1
        )));
    }
    Ok(n)
}

/// Which logit a class score reads and with which sign: a sigmoid model's one logit, negated for
/// class 0; else the class's own logit.
fn score_logit(outputs: usize, class: u32) -> (usize, f32) {
    match (outputs, class) {
        (1, 0) => (0, -1.0),
        (1, _) => (0, 1.0),
        _ => (class as usize, 1.0),
    }
}

/// The gradient of each image's class score w.r.t. the logits, [n, outputs]: the seed of the
/// backward pass.
pub(crate) fn score_gradient(outputs: usize, classes: &[u32]) -> Vec<f32> {
    let mut seed = vec![0.0; classes.len() * outputs];
    for (row, &class) in seed.chunks_exact_mut(outputs).zip(classes) {
        let (at, sign) = score_logit(outputs, class);
        row[at] = sign;
    }
    seed
}

/// The Grad-CAM layer: the last that learns spatial feature maps (a convolution).
pub(crate) fn grad_cam_layer(layers: &[LayerInfo]) -> Option<usize> {
    layers.iter().rposition(|l| l.spec.kind().learns_feature_maps())
}

/// The Grad-CAM layer's output and its gradient for `n` images, [n, channels, height, width].
pub(crate) struct CamTensors {
    pub activations: Vec<f32>,
    pub gradients: Vec<f32>,
    /// Per image: [channels, height, width].
    pub shape: [usize; 3],
}

/// What a backend's backward pass hands over for `n` images: the logits [n, outputs], the input
/// gradient [n, channels, height, width] and, when the model has a convolution, the Grad-CAM
/// layer's tensors.
pub(crate) struct BackwardResult {
    pub logits: Vec<f32>,
    pub input_gradient: Vec<f32>,
    pub cam: Option<CamTensors>,
}

/// The explanations of `classes`, from a backend's backward pass over their images.
pub(crate) fn assemble(
    input: InputShape,
    outputs: usize,
    classes: &[u32],
    result: &BackwardResult,
) -> Result<Vec<Explanation>> {
    let n = classes.len();
    let probabilities = loss::probabilities(LossShape { batch: n, classes: outputs }, &result.logits)?;
    let InputShape { channels, height, width } = input;
    let mut out = Vec::with_capacity(n);
    for (i, &class) in classes.iter().enumerate() {
        let logits = &result.logits[i * outputs..(i + 1) * outputs];
        let (at, sign) = score_logit(outputs, class);
        let p = &probabilities[i * outputs..(i + 1) * outputs];
        let sample = input.elements();
        let grad_cam = result
            .cam
            .as_ref()
            .map(|cam| {
                let len: usize = cam.shape.iter().product();
                let range = i * len..(i + 1) * len;
                grad_cam(&cam.activations[range.clone()], &cam.gradients[range], cam.shape, height, width)
            })
            .transpose()?;
        out.push(Explanation {
            class,
            score: sign * logits[at],
            probabilities: if outputs == 1 { vec![1.0 - p[0], p[0]] } else { p.to_vec() },
            height,
            width,
            saliency: saliency(&result.input_gradient[i * sample..(i + 1) * sample], channels, height, width)?,
            grad_cam,
        });
    }
    Ok(out)
}

/// `max over channels |gradient|` at each of the `height * width` pixels of one image's input
/// gradient [channels, height, width].
pub fn saliency(gradient: &[f32], channels: usize, height: usize, width: usize) -> Result<Vec<f32>> {
    check_len("saliency gradient", [channels, height, width], gradient.len())?;
    let plane = height * width;
    Ok((0..plane).map(|p| (0..channels).map(|c| gradient[c * plane + p].abs()).fold(0.0, f32::max)).collect())
}

fn check_len(what: &str, shape: [usize; 3], len: usize) -> Result<()> {
    if shape.iter().product::<usize>() != len {
        return Err(Error::shape(what, shape, format!("{len} values")));
    }
    Ok(())
}

/// The Grad-CAM map of one image at `height` x `width`, from the layer's output `activations` and
/// the class score's gradient w.r.t. it, both [channels, h, w] (`shape`): channel weights
/// `alpha_k = mean over positions of gradients_k`, the map `max(0, sum_k alpha_k activations_k)`,
/// upsampled by [`upsample_bilinear`] and divided by its maximum ([`normalise_to_unit`]). A map
/// with no positive value (no evidence for the class) is all zeros.
pub fn grad_cam(
    activations: &[f32],
    gradients: &[f32],
    shape: [usize; 3],
    height: usize,
    width: usize,
) -> Result<Vec<f32>> {
    check_len("grad_cam activations", shape, activations.len())?;
    check_len("grad_cam gradients", shape, gradients.len())?;
    let [_, h, w] = shape;
    let plane = h * w;
    let alphas: Vec<f32> = gradients.chunks_exact(plane).map(|g| g.iter().sum::<f32>() / plane as f32).collect();
    let map: Vec<f32> = (0..plane)
        .map(|p| alphas.iter().enumerate().map(|(k, alpha)| alpha * activations[k * plane + p]).sum::<f32>().max(0.0))
        .collect();
    Ok(normalise_to_unit(&upsample_bilinear(&map, h, w, height, width)?))
}

/// Resizes a row-major `h` x `w` map to `height` x `width` by bilinear interpolation with
/// half-pixel centres (as `tf.image.resize` and OpenCV's `resize`): output pixel `y` samples the
/// input at `(y + 0.5) * h / height - 0.5`, clamped to the edge pixels.
pub fn upsample_bilinear(map: &[f32], h: usize, w: usize, height: usize, width: usize) -> Result<Vec<f32>> {
    check_len("upsample_bilinear map", [1, h, w], map.len())?;
    if h == 0 || w == 0 {
        return Err(Error::Invalid(format!("upsample_bilinear: cannot resize an empty {h}x{w} map")));
    }
    // Per output coordinate: the two input coordinates and the weight of the second.
    let taps = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        (0..out)
            .map(|o| {
                let at = ((o as f32 + 0.5) * len as f32 / out as f32 - 0.5).clamp(0.0, (len - 1) as f32);
                let lo = at.floor() as usize;
                (lo, (lo + 1).min(len - 1), at - lo as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(height, h), taps(width, w));
    let mut out = Vec::with_capacity(height * width);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bottom = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    Ok(out)
}

/// `heat` divided by its maximum, so that it spans [0, 1] for a non-negative map (e.g. a saliency
/// map before [`overlay_heatmap`]); all zeros when no value is positive.
pub fn normalise_to_unit(heat: &[f32]) -> Vec<f32> {
    let max = heat.iter().copied().fold(0.0, f32::max);
    if max > 0.0 { heat.iter().map(|v| v / max).collect() } else { vec![0.0; heat.len()] }
}

/// A jet-like colour for `t` in [0, 1] (clamped; NaN is 0): dark blue, blue, cyan, yellow, red,
/// dark red.
pub fn jet(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let channel = |centre: f32| ((1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The heat map's opacity over the image, wherever one is drawn (explain cards, the web page):
/// enough to read the colours while the face stays visible.
pub const HEAT_ALPHA: f32 = 0.45;

/// `image` with the heat map `heat` (its `height * width` values, row-major, in [0, 1]) laid
/// over it in [`jet`] colours: each pixel `(1 - alpha) * image + alpha * jet(heat)`. Fails unless
/// `heat` has one value per pixel and `alpha` lies in [0, 1].
pub fn overlay_heatmap(image: &RgbImage, heat: &[f32], alpha: f32) -> Result<RgbImage> {
    let (width, height) = image.dimensions();
    if heat.len() != width as usize * height as usize {
        return Err(Error::shape(
            "heat map overlay",
            format!("{height}x{width} values, one per pixel of the image"),
            format!("{} values", heat.len()),
        ));
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::Invalid(format!("heat map overlay: alpha {alpha} is outside [0, 1]")));
    }
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let colour = jet(heat[y as usize * width as usize + x as usize]);
        let Rgb(pixel) = *image.get_pixel(x, y);
        Rgb(std::array::from_fn(|c| ((1.0 - alpha) * pixel[c] as f32 + alpha * colour[c] as f32).round() as u8))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_a_constant_keeps_it_and_corners_follow_the_corners() {
        assert_eq!(upsample_bilinear(&[2.0; 6], 2, 3, 5, 7).unwrap(), vec![2.0; 35]);
        let up = upsample_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4).unwrap();
        // Half-pixel centres: the outer ring clamps to the input's corners, the inside blends.
        assert_eq!((up[0], up[3], up[12], up[15]), (0.0, 1.0, 2.0, 3.0));
        assert_eq!(up[5], 0.75 * 0.75 * 0.0 + 0.75 * 0.25 * 1.0 + 0.25 * 0.75 * 2.0 + 0.25 * 0.25 * 3.0);
    }

    #[test]
    fn grad_cam_weights_channels_by_their_mean_gradient() {
        // Two channels of 1x2: channel 0 votes for the class (mean gradient 1), channel 1 against
        // (mean gradient -1) and is larger on the right.
        let activations = [1.0, 0.0, 0.0, 3.0];
        let gradients = [1.0, 1.0, -2.0, 0.0];
        // alpha = [1, -1]: map = [max(0, 1 - 0), max(0, 0 - 3)] = [1, 0].
        assert_eq!(grad_cam(&activations, &gradients, [2, 1, 2], 1, 2).unwrap(), vec![1.0, 0.0]);
        // No positive evidence: all zeros, not NaN.
        assert_eq!(grad_cam(&activations, &[-1.0; 4], [2, 1, 2], 1, 2).unwrap(), vec![0.0, 0.0]);
        assert!(grad_cam(&activations, &gradients[..3], [2, 1, 2], 1, 2).is_err());
    }

    #[test]
    fn overlay_blends_and_checks_its_inputs() {
        let image = RgbImage::from_pixel(2, 1, Rgb([100, 100, 100]));
        let out = overlay_heatmap(&image, &[0.0, 1.0], 0.5).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [50, 50, 114]); // half of jet(0) = dark blue [0, 0, 128]
        assert_eq!(out.get_pixel(1, 0).0, [114, 50, 50]);
        assert!(overlay_heatmap(&image, &[0.0], 0.5).is_err());
        assert!(overlay_heatmap(&image, &[0.0, 1.0], 1.5).is_err());
    }
}
