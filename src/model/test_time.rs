//! Test-time augmentation: a prediction as the mean of the model's probabilities for an image
//! and for transformed copies of it. Chosen on validation data and stored in the model file, so
//! that `eval`, `predict` and `serve` predict alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestTimeAugment {
    /// The image alone.
    #[default]
    None,
    /// The mean of the image's probabilities and its left-right mirror's (faces are nearly
    /// symmetric, and a model trained with flips has seen both).
    Mirror,
}

impl TestTimeAugment {
    /// The transformed copies of `images` (NCHW rows `width` values long, any count) besides the
    /// images themselves, one batch per extra pass, each as long as `images`.
    pub fn copies(self, images: &[f32], width: usize) -> Vec<Vec<f32>> {
        match self {
            TestTimeAugment::None => Vec::new(),
            TestTimeAugment::Mirror => {
                let mut mirrored = images.to_vec();
                mirrored.chunks_exact_mut(width).for_each(<[f32]>::reverse);
                vec![mirrored]
            }
        }
    }
}

impl fmt::Display for TestTimeAugment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TestTimeAugment::None => "none",
            TestTimeAugment::Mirror => "mirror",
        })
    }
}

impl FromStr for TestTimeAugment {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "none" => Ok(TestTimeAugment::None),
            "mirror" => Ok(TestTimeAugment::Mirror),
            _ => Err(Error::Invalid(format!("unknown test-time augmentation {text:?}: expected none or mirror"))),
        }
    }
}
