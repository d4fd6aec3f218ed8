//! Synthetic cartoon faces, happy, sad or angry, for machines with no data: a face outline, eyes,
//! brows and a mouth whose curve carries the emotion (up for happy, down for sad, short and
//! nearly flat under brows slanted in and down for angry), at a random place and size, in random
//! colours and line widths, over background clutter, with pixel noise, at any size. Happy and sad
//! faces drawn from the same parameters differ only in the mouth, so a model must look there;
//! each image comes with its [`FaceLayout`], the mouth's box among it, to check where a model looks.
//!
//! Shapes are drawn anti-aliased from signed distances: a pixel is covered by `0.5 - distance`
//! clamped to [0, 1], so edges are smooth at any size.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::{ImageFormat, RgbImage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use crate::{Error, Result};

/// The expression drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emotion {
    Happy,
    Sad,
    Angry,
}

impl Emotion {
    /// Every emotion, in a fixed order.
    pub const ALL: [Emotion; 3] = [Emotion::Happy, Emotion::Sad, Emotion::Angry];

    /// The class name: happy, sad or angry.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Angry => "angry",
        }
    }

    /// Parses a comma-separated list such as `happy,sad,angry`; errors on an unknown or repeated name.
    pub fn parse_list(list: &str) -> Result<Vec<Emotion>> {
        let mut emotions = Vec::new();
        for name in list.split(',').map(str::trim) {
            let emotion: Emotion = name.parse()?;
            if emotions.contains(&emotion) {
                return Err(Error::Invalid(format!("class {name:?} is listed twice in {list:?}")));
            }
            emotions.push(emotion);
        }
        Ok(emotions)
    }
}

impl FromStr for Emotion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Emotion::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| {
            Error::Invalid(format!("unknown class {s:?}: the face generator draws happy, sad and angry"))
        })
    }
}

/// A rectangle of pixels, `x0..x1` by `y0..y1` (half-open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelBox {
    /// First column inside.
    pub x0: u32,
    /// First row inside.
    pub y0: u32,
    /// First column past the right edge.
    pub x1: u32,
    /// First row past the bottom edge.
    pub y1: u32,
}

impl PixelBox {
    /// Whether pixel (x, y) is inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// Where the parts of a drawn face are, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceLayout {
    /// The expression drawn.
    pub emotion: Emotion,
    /// Centre (x, y) and radii (x, y) of the face ellipse.
    pub face_center: (f32, f32),
    pub face_radii: (f32, f32),
    /// Centres (x, y) of the left and right eye.
    pub eyes: [(f32, f32); 2],
    /// Every pixel the mouth touches (line width and anti-aliasing included).
    pub mouth: PixelBox,
    /// How far the mouth's corners sit below its middle, in pixels: negative for a smile.
    pub mouth_bend: f32,
    /// How far each brow's inner end sits below its outer end, in pixels: positive for a frown.
    pub brow_drop: f32,
}

/// A background shape.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Clutter {
    Disc { center: (f32, f32), radius: f32 },
    Ring { center: (f32, f32), radius: f32, width: f32 },
    Bar { from: (f32, f32), to: (f32, f32), width: f32 },
    Rect { center: (f32, f32), half: (f32, f32) },
}

/// Everything drawn at random for one face; [`FaceParams::render`] draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceParams {
    emotion: Emotion,
    size: u32,
    background: [f32; 3],
    clutter: Vec<(Clutter, [f32; 3])>,
    center: (f32, f32),
    radii: (f32, f32),
    skin: [f32; 3],
    ink: [f32; 3],
    line_width: f32,
    eye_offset: (f32, f32),
    eye_radius: f32,
    brow_gap: f32,
    brow_half_length: f32,
    /// Brow slope (inner end down per unit of half length) of a face that is not angry.
    brow_slope: f32,
    /// Brow slope of an angry face.
    angry_slope: f32,
    mouth_drop: f32,
    mouth_half_width: f32,
    mouth_bend: f32,
    noise: f32,
    noise_seed: u64,
}

/// The smallest image side the generator draws.
pub const MIN_SIZE: u32 = 16;

impl FaceParams {
    /// Draws a face's parameters for a `size` x `size` image. Errors on a size under [`MIN_SIZE`].
    pub fn random(emotion: Emotion, size: u32, rng: &mut impl Rng) -> Result<Self> {
        if size < MIN_SIZE {
            return Err(Error::Invalid(format!("face size {size}: the generator draws {MIN_SIZE} px or more")));
        }
        let s = size as f32;
        let mut colour = |low: f32, high: f32| [(); 3].map(|()| rng.random_range(low..high));
        let background = colour(0.0, 1.0);
        let skin = colour(0.55, 1.0);
        let ink = colour(0.0, 0.3);
        let clutter_count = rng.random_range(2..=7);
        let clutter = (0..clutter_count)
            .map(|_| {
                let center = (rng.random_range(0.0..s), rng.random_range(0.0..s));
                let radius = s * rng.random_range(0.04..0.2);
                let shape = match rng.random_range(0..4) {
                    0 => Clutter::Disc { center, radius },
                    1 => Clutter::Ring { center, radius, width: s * rng.random_range(0.01..0.04) },
                    2 => Clutter::Bar {
                        from: center,
                        to: (rng.random_range(0.0..s), rng.random_range(0.0..s)),
                        width: s * rng.random_range(0.01..0.04),
                    },
                    _ => Clutter::Rect { center, half: (radius, s * rng.random_range(0.04..0.2)) },
                };
                (shape, [(); 3].map(|()| rng.random_range(0.0..1.0)))
            })
            .collect();
        let line_width = (s * rng.random_range(0.012..0.03)).max(1.0);
        let margin = line_width + 1.0;
        let rx = s * rng.random_range(0.24..0.36);
        // The face and its outline must fit with room to move: below ~50 px a tall face could
        // leave no room for its centre (an empty range, a panic); such faces are made shorter.
        let ry = (rx * rng.random_range(1.0..1.25)).min(s * 0.45).min(s / 2.0 - margin - 0.5);
        let center = (rng.random_range(rx + margin..s - rx - margin), rng.random_range(ry + margin..s - ry - margin));
        let eye_radius = (rx * rng.random_range(0.07..0.13)).max(1.0);
        Ok(Self {
            emotion,
            size,
            background,
            clutter,
            center,
            radii: (rx, ry),
            skin,
            ink,
            line_width,
            eye_offset: (rx * rng.random_range(0.3..0.45), ry * rng.random_range(0.15..0.35)),
            eye_radius,
            brow_gap: eye_radius + ry * rng.random_range(0.08..0.15),
            brow_half_length: rx * rng.random_range(0.12..0.2),
            brow_slope: rng.random_range(-0.15..0.15),
            angry_slope: rng.random_range(0.4..0.8),
            mouth_drop: ry * rng.random_range(0.35..0.5),
            mouth_half_width: rx * rng.random_range(0.3..0.5),
            mouth_bend: ry * rng.random_range(0.12..0.22),
            noise: rng.random_range(0.0..0.08),
            noise_seed: rng.random(),
        })
    }

    /// The parameters of sample `index` of `emotion` in a set generated from `seed`: the same
    /// (seed, emotion, index) always gives the same face, whatever else is generated.
    pub fn for_sample(emotion: Emotion, size: u32, seed: u64, index: usize) -> Result<Self> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
        key[16..16 + emotion.name().len()].copy_from_slice(emotion.name().as_bytes());
        FaceParams::random(emotion, size, &mut StdRng::from_seed(key))
    }

    /// The same face with another expression: happy and sad differ only in the mouth; angry
    /// also slants the brows.
    pub fn with_emotion(&self, emotion: Emotion) -> Self {
        Self { emotion, ..self.clone() }
    }

    /// The expression drawn.
    pub fn emotion(&self) -> Emotion {
        self.emotion
    }

    /// The mouth as (middle x, middle y, half width, corner bend): the bend is negative for a smile.
    fn mouth(&self) -> (f32, f32, f32, f32) {
        let (x, y) = (self.center.0, self.center.1 + self.mouth_drop);
        match self.emotion {
            Emotion::Happy => (x, y, self.mouth_half_width, -self.mouth_bend),
            Emotion::Sad => (x, y, self.mouth_half_width, self.mouth_bend),
            Emotion::Angry => (x, y, self.mouth_half_width * 0.7, self.mouth_bend * 0.3),
        }
    }

    fn brow_slope(&self) -> f32 {
        match self.emotion {
            Emotion::Angry => self.angry_slope,
            Emotion::Happy | Emotion::Sad => self.brow_slope,
        }
    }

    /// Draws the face: background, clutter, face, eyes, brows, mouth, then noise.
    pub fn render(&self) -> (RgbImage, FaceLayout) {
        let mut canvas = Canvas::new(self.size, self.background);
        for (shape, colour) in &self.clutter {
            match *shape {
                Clutter::Disc { center, radius } => canvas.ellipse(center, (radius, radius), None, *colour),
                Clutter::Ring { center, radius, width } => {
                    canvas.ellipse(center, (radius, radius), Some(width), *colour)
                }
                Clutter::Bar { from, to, width } => {
                    canvas.polyline(&[from, to], width, *colour);
                }
                Clutter::Rect { center, half } => canvas.rect(center, half, *colour),
            }
        }
        canvas.ellipse(self.center, self.radii, None, self.skin);
        canvas.ellipse(self.center, self.radii, Some(self.line_width), self.ink);
        let (cx, cy) = self.center;
        let eyes = [-1.0, 1.0].map(|side| (cx + side * self.eye_offset.0, cy - self.eye_offset.1));
        let brow_drop = self.brow_slope() * self.brow_half_length * 2.0;
        for (side, eye) in [-1.0f32, 1.0].into_iter().zip(eyes) {
            canvas.ellipse(eye, (self.eye_radius, self.eye_radius * 1.2), None, self.ink);
            let (bx, by) = (eye.0, eye.1 - self.brow_gap);
            let inner = (bx - side * self.brow_half_length, by + brow_drop / 2.0);
            let outer = (bx + side * self.brow_half_length, by - brow_drop / 2.0);
            canvas.polyline(&[inner, outer], self.line_width, self.ink);
        }
        let (mx, my, half_width, bend) = self.mouth();
        let curve: Vec<(f32, f32)> = (0..=16)
            .map(|i| {
                let t = i as f32 / 8.0 - 1.0;
                (mx + t * half_width, my + bend * t * t)
            })
            .collect();
        let mouth = canvas.polyline(&curve, self.line_width, self.ink);
        let layout = FaceLayout {
            emotion: self.emotion,
            face_center: self.center,
            face_radii: self.radii,
            eyes,
            mouth,
            mouth_bend: bend,
            brow_drop,
        };
        (canvas.finish(self.noise, self.noise_seed), layout)
    }
}

/// An RGB image in f32 being drawn on.
struct Canvas {
    size: u32,
    pixels: Vec<[f32; 3]>,
}

impl Canvas {
    fn new(size: u32, background: [f32; 3]) -> Self {
        Self { size, pixels: vec![background; (size * size) as usize] }
    }

    /// Blends `colour` over the pixels of `area` (x0, y0, x1, y1 in pixels, clipped) by the
    /// coverage of the shape whose signed distance at a pixel centre is `distance`; returns the
    /// box of the pixels touched.
    fn paint(&mut self, area: [f32; 4], colour: [f32; 3], distance: impl Fn(f32, f32) -> f32) -> PixelBox {
        let clip = |v: f32| (v.floor().max(0.0) as u32).min(self.size);
        let (x0, y0, x1, y1) = (clip(area[0] - 1.0), clip(area[1] - 1.0), clip(area[2] + 2.0), clip(area[3] + 2.0));
        let mut touched = PixelBox { x0: x1, y0: y1, x1: x0, y1: y0 };
        for y in y0..y1 {
            for x in x0..x1 {
                let coverage = (0.5 - distance(x as f32 + 0.5, y as f32 + 0.5)).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    let pixel = &mut self.pixels[(y * self.size + x) as usize];
                    for (p, c) in pixel.iter_mut().zip(colour) {
                        *p += (c - *p) * coverage;
                    }
                    touched = PixelBox {
                        x0: touched.x0.min(x),
                        y0: touched.y0.min(y),
                        x1: touched.x1.max(x + 1),
                        y1: touched.y1.max(y + 1),
                    };
                }
            }
        }
        touched
    }

    /// A filled ellipse, or its outline `outline` pixels wide.
    fn ellipse(&mut self, center: (f32, f32), radii: (f32, f32), outline: Option<f32>, colour: [f32; 3]) {
        let reach = outline.unwrap_or(0.0) / 2.0;
        let area = [
            center.0 - radii.0 - reach,
            center.1 - radii.1 - reach,
            center.0 + radii.0 + reach,
            center.1 + radii.1 + reach,
        ];
        self.paint(area, colour, |x, y| {
            let d = ellipse_distance((x - center.0, y - center.1), radii);
            match outline {
                Some(width) => d.abs() - width / 2.0,
                None => d,
            }
        });
    }

    /// A line through `points`, `width` pixels wide with round ends; returns the pixels touched.
    fn polyline(&mut self, points: &[(f32, f32)], width: f32, colour: [f32; 3]) -> PixelBox {
        let r = width / 2.0;
        let xs = points.iter().map(|p| p.0);
        let ys = points.iter().map(|p| p.1);
        let area = [
            xs.clone().fold(f32::INFINITY, f32::min) - r,
            ys.clone().fold(f32::INFINITY, f32::min) - r,
            xs.fold(f32::NEG_INFINITY, f32::max) + r,
            ys.fold(f32::NEG_INFINITY, f32::max) + r,
        ];
        self.paint(area, colour, |x, y| {
            points.windows(2).map(|s| segment_distance((x, y), s[0], s[1])).fold(f32::INFINITY, f32::min) - r
        })
    }

    /// A filled axis-aligned rectangle.
    fn rect(&mut self, center: (f32, f32), half: (f32, f32), colour: [f32; 3]) {
        let area = [center.0 - half.0, center.1 - half.1, center.0 + half.0, center.1 + half.1];
        self.paint(area, colour, |x, y| {
            let q = ((x - center.0).abs() - half.0, (y - center.1).abs() - half.1);
            q.0.max(0.0).hypot(q.1.max(0.0)) + q.0.max(q.1).min(0.0)
        });
    }

    /// Adds uniform noise of +-`noise` (seeded) and rounds to u8.
    fn finish(self, noise: f32, seed: u64) -> RgbImage {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bytes = Vec::with_capacity(self.pixels.len() * 3);
        for pixel in self.pixels {
            for value in pixel {
                let jitter = if noise > 0.0 { rng.random_range(-noise..noise) } else { 0.0 };
                bytes.push(((value + jitter).clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        RgbImage::from_raw(self.size, self.size, bytes).expect("size * size RGB pixels")
    }
}

/// Approximate signed distance from `p` (relative to the centre) to an ellipse of `radii`
/// (Inigo Quilez's first-order estimate, good near the curve, where anti-aliasing needs it).
fn ellipse_distance(p: (f32, f32), radii: (f32, f32)) -> f32 {
    let k0 = (p.0 / radii.0).hypot(p.1 / radii.1);
    let k1 = (p.0 / (radii.0 * radii.0)).hypot(p.1 / (radii.1 * radii.1));
    if k1 == 0.0 { -radii.0.min(radii.1) } else { k0 * (k0 - 1.0) / k1 }
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (pa, ba) = ((p.0 - a.0, p.1 - a.1), (b.0 - a.0, b.1 - a.1));
    let length2 = ba.0 * ba.0 + ba.1 * ba.1;
    let t = if length2 == 0.0 { 0.0 } else { ((pa.0 * ba.0 + pa.1 * ba.1) / length2).clamp(0.0, 1.0) };
    (pa.0 - ba.0 * t).hypot(pa.1 - ba.1 * t)
}

/// Sample `index` of `emotion` from a set generated from `seed`, drawn at `size` x `size`.
pub fn face(emotion: Emotion, size: u32, seed: u64, index: usize) -> Result<(RgbImage, FaceLayout)> {
    Ok(FaceParams::for_sample(emotion, size, seed, index)?.render())
}

/// How a synthetic dataset draws its faces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FacePairing {
    /// Every image is a face of its own.
    #[default]
    Independent,
    /// Image `i` of every class is one face (that of the first class) with each class's
    /// expression, so nothing but the expression tells the classes apart: a small set is then
    /// learnt from the mouth instead of memorised by colours and clutter, and a model that
    /// memorises a face gets its twin of another class wrong.
    Paired,
}

/// Writes `per_class` faces of each emotion as PNGs, `out_dir/<class>/<class>_<i>.png` (i
/// zero-padded), a folder [`crate::data::folder::ImageFolder`] reads like any other. Each file is
/// written to a temporary name and renamed. Errors if a class folder exists and is not empty (old
/// files would mix in), on a size under [`MIN_SIZE`], no classes, `per_class` 0, or a failed write.
/// Returns the files written, class by class.
pub fn write_dataset(
    out_dir: &Path,
    classes: &[Emotion],
    per_class: usize,
    size: u32,
    seed: u64,
    pairing: FacePairing,
) -> Result<Vec<PathBuf>> {
    if classes.is_empty() || per_class == 0 {
        return Err(Error::Invalid("synthetic faces: expected at least one class and one image per class".into()));
    }
    let write_error = |path: &Path, e: &dyn std::fmt::Display| Error::Dataset {
        path: path.to_path_buf(),
        reason: format!("writing synthetic faces: {e}"),
    };
    for emotion in classes {
        let dir = out_dir.join(emotion.name());
        if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(write_error(
                &dir,
                &"the class folder exists and is not empty; remove it or choose another folder",
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
    }
    let digits = (per_class - 1).to_string().len();
    let jobs: Vec<(Emotion, usize)> = classes.iter().flat_map(|&e| (0..per_class).map(move |i| (e, i))).collect();
    jobs.par_iter()
        .map(|&(emotion, i)| {
            let (image, _) = match pairing {
                FacePairing::Independent => face(emotion, size, seed, i)?,
                FacePairing::Paired => {
                    FaceParams::for_sample(classes[0], size, seed, i)?.with_emotion(emotion).render()
                }
            };
            let path = out_dir.join(emotion.name()).join(format!("{}_{i:0digits$}.png", emotion.name()));
            let mut png = std::io::Cursor::new(Vec::new());
            image.write_to(&mut png, ImageFormat::Png).map_err(|e| write_error(&path, &e))?;
            crate::files::write_atomically(&path, png.get_ref()).map_err(|e| write_error(&path, &e))?;
            Ok(path)
        })
        .collect()
}
