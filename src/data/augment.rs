//! Random augmentation of training images: horizontal flip, small rotation, shift and zoom (one
//! bilinear resampling, borders reflected as Keras's default `fill_mode`), brightness and contrast
//! jitter. Each is off at strength 0. The draws for a sample come from a generator keyed by
//! (seed, epoch, sample), so a run repeats exactly whichever thread prepares the batch.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{Error, Result};

/// Which augmentations to apply, and how strongly (0 turns one off).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Rotate by an angle drawn from [-rotate_deg, rotate_deg] degrees.
    pub rotate_deg: f32,
    /// Shift by up to this fraction of the width and of the height, each way.
    pub shift: f32,
    /// Scale by a factor drawn from [1 - zoom, 1 + zoom] (above 1 zooms in).
    pub zoom: f32,
    /// Add a value drawn from [-brightness, brightness] (pixels are in [0, 1]).
    pub brightness: f32,
    /// Scale each channel's deviation from its mean by a factor drawn from [1 - contrast, 1 + contrast].
    pub contrast: f32,
}

/// `off`, `moderate` ([`Augment::moderate`]), or a comma-separated list of `flip`,
/// `rotate=DEG`, `shift=F`, `zoom=F`, `brightness=F`, `contrast=F` (the rest off), as
/// `wgcnn train --augment` takes it. Strengths are checked by [`Augment::validate`].
impl std::str::FromStr for Augment {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut augment = match s.trim() {
            "off" | "none" | "" => return Ok(Augment::default()),
            "moderate" => return Ok(Augment::moderate()),
            _ => Augment::default(),
        };
        for item in s.split(',').map(str::trim) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let number = || {
                value
                    .parse::<f32>()
                    .map_err(|_| format!("augmentation {key:?} needs a number, as {key}=0.1; got {item:?}"))
            };
            match key {
                "flip" if value.is_empty() => augment.flip = true,
                "rotate" => augment.rotate_deg = number()?,
                "shift" => augment.shift = number()?,
                "zoom" => augment.zoom = number()?,
                "brightness" => augment.brightness = number()?,
                "contrast" => augment.contrast = number()?,
                _ => {
                    return Err(format!(
                        "unknown augmentation {item:?}: expected off, moderate, or a list of flip, rotate=DEG, shift=F, zoom=F, brightness=F, contrast=F"
                    ));
                }
            }
        }
        augment.validate().map_err(|e| e.to_string())?;
        Ok(augment)
    }
}

/// The layout of one planar image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanarShape {
    /// Planes (1 or 3).
    pub channels: usize,
    /// Rows per plane.
    pub height: usize,
    /// Values per row.
    pub width: usize,
}

impl PlanarShape {
    fn plane(&self) -> usize {
        self.height * self.width
    }
}

impl Augment {
    /// No augmentation.
    pub const OFF: Augment =
        Augment { flip: false, rotate_deg: 0.0, shift: 0.0, zoom: 0.0, brightness: 0.0, contrast: 0.0 };

    /// Moderate settings for photos: flip, 10 degrees, 10% shift, 10% zoom, 0.1 brightness, 0.1 contrast.
    pub fn moderate() -> Self {
        Self { flip: true, rotate_deg: 10.0, shift: 0.1, zoom: 0.1, brightness: 0.1, contrast: 0.1 }
    }

    /// Whether every augmentation is off.
    pub fn is_off(&self) -> bool {
        *self == Augment::default()
    }

    /// Checks the strengths: rotation in [0, 180] degrees, shift and brightness and contrast in
    /// [0, 1], zoom in [0, 1).
    pub fn validate(&self) -> Result<()> {
        let in_range = |v: f32, max: f32| (0.0..=max).contains(&v);
        if !(in_range(self.rotate_deg, 180.0)
            && in_range(self.shift, 1.0)
            && (0.0..1.0).contains(&self.zoom)
            && in_range(self.brightness, 1.0)
            && in_range(self.contrast, 1.0))
        {
            return Err(Error::Invalid(format!(
                "augmentation {self:?}: expected rotate_deg in [0, 180], shift, brightness and contrast in [0, 1], zoom in [0, 1)"
            )));
        }
        Ok(())
    }

    /// The generator of sample `sample`'s draws in `epoch` of a run seeded with `seed`.
    pub fn rng(seed: u64, epoch: usize, sample: usize) -> StdRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
        key[16..24].copy_from_slice(&(sample as u64).to_le_bytes());
        key[24..].copy_from_slice(b"augment\0");
        StdRng::from_seed(key)
    }

    /// Augments one planar image of values in [0, 1] in place, drawing from `rng`.
    pub fn apply(&self, image: &mut [f32], shape: PlanarShape, rng: &mut impl Rng) {
        debug_assert_eq!(image.len(), shape.channels * shape.plane());
        let symmetric = |rng: &mut dyn rand::RngCore, strength: f32| {
            if strength > 0.0 { rng.random_range(-strength..=strength) } else { 0.0 }
        };
        let angle = symmetric(rng, self.rotate_deg).to_radians();
        let shift = (symmetric(rng, self.shift), symmetric(rng, self.shift));
        let scale = 1.0 + symmetric(rng, self.zoom);
        if angle != 0.0 || shift != (0.0, 0.0) || scale != 1.0 {
            let moved = (shift.0 * shape.width as f32, shift.1 * shape.height as f32);
            resample(image, shape, angle, moved, scale);
        }
        if self.flip && rng.random_bool(0.5) {
            flip_horizontal(image, shape);
        }
        let delta = symmetric(rng, self.brightness);
        let factor = 1.0 + symmetric(rng, self.contrast);
        if delta != 0.0 || factor != 1.0 {
            for plane in image.chunks_exact_mut(shape.plane()) {
                let mean = plane.iter().sum::<f32>() / plane.len() as f32;
                for v in plane {
                    *v = ((*v - mean) * factor + mean + delta).clamp(0.0, 1.0);
                }
            }
        }
    }
}

/// Mirrors a planar image left-right in place.
pub fn flip_horizontal(image: &mut [f32], shape: PlanarShape) {
    for row in image.chunks_exact_mut(shape.width) {
        row.reverse();
    }
}

/// Rotates by `angle` (radians, about the centre), zooms by `scale` and moves by `shift` pixels:
/// each output pixel samples the source bilinearly at the inverse-transformed position.
fn resample(image: &mut [f32], shape: PlanarShape, angle: f32, shift: (f32, f32), scale: f32) {
    let (w, h) = (shape.width, shape.height);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (sin, cos) = angle.sin_cos();
    let source = image.to_vec();
    for (c, plane) in image.chunks_exact_mut(shape.plane()).enumerate() {
        let src = &source[c * shape.plane()..(c + 1) * shape.plane()];
        for y in 0..h {
            for x in 0..w {
                // Output pixel centre relative to the image centre, with the shift undone.
                let (px, py) = (x as f32 + 0.5 - cx - shift.0, y as f32 + 0.5 - cy - shift.1);
                // Undo the rotation and the zoom; back to pixel-centre indices.
                let u = (cos * px + sin * py) / scale + cx - 0.5;
                let v = (-sin * px + cos * py) / scale + cy - 0.5;
                plane[y * w + x] = bilinear(src, w, h, u, v);
            }
        }
    }
}

/// The plane's value at (u, v) in pixel-centre indices, borders reflected (d c b a | a b c d | d c b a).
fn bilinear(plane: &[f32], w: usize, h: usize, u: f32, v: f32) -> f32 {
    let (u, v) = (reflect(u, w), reflect(v, h));
    let (x0, y0) = (u.floor() as usize, v.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (u - x0 as f32, v - y0 as f32);
    let at = |x: usize, y: usize| plane[y * w + x];
    let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx;
    let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx;
    top + (bottom - top) * fy
}

/// A pixel-centre coordinate folded into [0, len - 1] by reflection about the image edges.
fn reflect(coordinate: f32, len: usize) -> f32 {
    let period = 2.0 * len as f32;
    let mut t = (coordinate + 0.5).rem_euclid(period);
    if t >= len as f32 {
        t = period - t;
    }
    (t - 0.5).clamp(0.0, (len - 1) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_about_the_edges() {
        assert_eq!(reflect(0.0, 4), 0.0);
        assert_eq!(reflect(3.0, 4), 3.0);
        assert_eq!(reflect(-1.0, 4), 0.0);
        assert_eq!(reflect(-2.0, 4), 1.0);
        assert_eq!(reflect(4.0, 4), 3.0);
        assert_eq!(reflect(5.0, 4), 2.0);
    }

    #[test]
    fn an_identity_transform_resamples_to_the_same_image() {
        let shape = PlanarShape { channels: 2, height: 5, width: 7 };
        let original: Vec<f32> = (0..70).map(|i| i as f32 / 70.0).collect();
        let mut image = original.clone();
        resample(&mut image, shape, 0.0, (0.0, 0.0), 1.0);
        assert_eq!(image, original);
        // A shift of one whole pixel right moves column x to x + 1.
        resample(&mut image, shape, 0.0, (1.0, 0.0), 1.0);
        assert_eq!(image[3], original[2]);
    }
}
