//! One image's explanation as a picture: the image as the model took it beside the heat map over
//! it, captioned with the prediction and the method.

use std::path::Path;

use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::Result;
use crate::model::explain::{ExplainMethod, HEAT_ALPHA, jet, overlay_heatmap, upsample_bilinear};
use crate::report::{Prediction, plots};

/// The smallest side of an [`ExplainedImage::write_card`] panel: small model inputs are scaled up.
pub const CARD_MIN_SIDE: u32 = 256;

/// One image explained by [`ModelSession::explain_bytes`](crate::workflow::session::ModelSession::explain_bytes).
#[derive(Clone, Debug)]
pub struct ExplainedImage {
    /// The model's prediction for the image.
    pub prediction: Prediction,
    /// The class whose evidence `heat` shows (the predicted one unless another was asked for).
    pub class: usize,
    pub class_name: String,
    /// The model's probability of `class`.
    pub probability: f32,
    pub method: ExplainMethod,
    /// The heat map at the model's input size, row-major, in [0, 1]: all zeros when nothing in
    /// the image raises the class score (Grad-CAM).
    pub heat: Vec<f32>,
    /// The image as the model takes it (resized; a grayscale model's as gray RGB).
    pub image: RgbImage,
}

impl ExplainedImage {
    /// e.g. `predicted happy 93.1% | Grad-CAM for happy`, or `... for sad (6.9%)` for another class.
    pub fn caption(&self) -> String {
        let mut caption = format!(
            "predicted {} {:.1}% | {} for {}",
            self.prediction.label,
            self.prediction.confidence * 100.0,
            self.method.title(),
            self.class_name
        );
        if self.class != self.prediction.index {
            caption += &format!(" ({:.1}%)", self.probability * 100.0);
        }
        if self.heat.iter().all(|&h| h == 0.0) {
            caption += ": no evidence";
        }
        caption
    }

    /// Writes a PNG card: the image as the model took it and the same with the heat map over it,
    /// side by side, scaled up to at least [`CARD_MIN_SIDE`] pixels, with [`Self::caption`] below.
    pub fn write_card(&self, path: &Path) -> Result<()> {
        let (width, height) = self.image.dimensions();
        let scale = CARD_MIN_SIDE.div_ceil(width.min(height).max(1)).max(1);
        let (w, h) = (width * scale, height * scale);
        let image = imageops::resize(&self.image, w, h, FilterType::Triangle);
        let heat = upsample_bilinear(&self.heat, height as usize, width as usize, h as usize, w as usize)?;
        let overlay = overlay_heatmap(&image, &heat, HEAT_ALPHA)?;
        plots::explanation_card(&[image, overlay], jet, &self.caption(), path)
    }
}
