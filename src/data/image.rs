//! One image file's bytes to the model's input: the format recognised from the content (not the
//! file name), EXIF orientation applied, converted to RGB or grayscale, resized with a triangle
//! filter to the input size (stretched, centre-cropped or padded), as planar (CHW) u8.
//!
//! The loader, `predict`, `explain` and the web server all go through [`decode_and_resize`], so an
//! image is prepared the same way for training and for inference, and every decode is held to
//! [`DecodeLimits`]: the size an image declares is checked before its pixels are allocated (a
//! 3 MB PNG can declare 60000x60000 pixels), and a decoder that panics on a malformed file is
//! caught here and reported like any unreadable file.
//!
//! What [`decode_and_resize`] holds at its peak, besides the file's bytes (twice for a JPEG, whose
//! decoder copies them), is at most three times `max_pixel_bytes`: the pixels as stored and at
//! most as many bytes again (their conversion to 8-bit gray or RGB, none when they are stored so;
//! an EXIF rotation by 90 degrees of the converted pixels; a PNG decoder's row buffers, a whole
//! row of a one-row strip), or for a progressive JPEG its decoder's coefficients, 2 bytes a
//! sample, besides the pixels. The resize holds at most 16 bytes x the square root of (the
//! image's pixels x the input's pixels) between its passes: 48 MB for 179 megapixels to 224x224.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::imageops::FilterType;
use image::{
    DynamicImage, GenericImageView, ImageBuffer, ImageDecoder, ImageFormat, ImageReader, Limits, Pixel, Rgb, RgbImage,
};
use thiserror::Error;

use crate::files::{ReadError, human_bytes, read_bounded};
// Where the model file's normalisation is defined; images are fitted here.
pub use crate::model::normalisation::Fit;

/// How a model takes its images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputFormat {
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// (height, width) in pixels.
    pub size: (u32, u32),
    /// How an image of another aspect ratio is brought to `size`.
    pub fit: Fit,
}

impl InputFormat {
    /// RGB at `height` x `width`, stretched.
    pub fn rgb(height: u32, width: u32) -> Self {
        Self { channels: 3, size: (height, width), fit: Fit::Stretch }
    }

    /// Values per image: channels * height * width.
    pub fn sample_len(&self) -> usize {
        self.channels * self.size.0 as usize * self.size.1 as usize
    }

    /// Checks the channels (1 or 3) and that the size is not zero.
    pub fn validate(&self) -> crate::Result<()> {
        if !matches!(self.channels, 1 | 3) || self.size.0 == 0 || self.size.1 == 0 {
            return Err(crate::Error::Invalid(format!(
                "input format: expected 1 or 3 channels and a non-zero size, got {} channels at {}x{}",
                self.channels, self.size.0, self.size.1
            )));
        }
        Ok(())
    }
}

/// Why a file's bytes did not give an image.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("not an image: the content is none of JPEG, PNG, GIF, BMP, WebP, TIFF or the other formats known")]
    NotAnImage,
    #[error("truncated {format}: {detail}")]
    Truncated { format: String, detail: String },
    #[error("unreadable {format}: {detail}")]
    Unreadable { format: String, detail: String },
    /// More pixels than [`DecodeLimits::max_pixels`], or a side over [`DecodeLimits::max_side`],
    /// found in the header.
    #[error("{format} declares {width}x{height} pixels, over {limit}")]
    TooLarge { format: String, width: u32, height: u32, limit: SizeLimit },
    /// Decoded pixels over [`DecodeLimits::max_pixel_bytes`], found in the header.
    #[error(
        "{format} declares {width}x{height} pixels, {} decoded, over the limit of {}",
        human_bytes(*.bytes), human_bytes(*.limit)
    )]
    TooManyBytes { format: String, width: u32, height: u32, bytes: u64, limit: u64 },
    /// The decoder panicked on the file (a bug of the decoder's, caught at the decode boundary).
    #[error("unreadable {format}: its decoder failed ({detail})")]
    DecoderPanicked { format: String, detail: String },
}

/// Which of [`DecodeLimits`]'s size limits an image's header is over, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeLimit {
    /// [`DecodeLimits::max_pixels`].
    Pixels(u64),
    /// [`DecodeLimits::max_side`].
    Side(u32),
}

impl std::fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SizeLimit::Pixels(limit) if *limit < 1_000_000 => write!(f, "the limit of {limit} pixels"),
            SizeLimit::Pixels(limit) => {
                let megapixels = format!("{:.1}", *limit as f64 / 1e6);
                write!(f, "the limit of {} megapixels", megapixels.strip_suffix(".0").unwrap_or(&megapixels))
            }
            SizeLimit::Side(limit) => write!(f, "the {limit} limit (pixels a side)"),
        }
    }
}

/// Bounds on what one image may cost to read and decode; what is over them is refused from the
/// file's size or the image's header, before its bytes are read or its pixels allocated.
/// Checkpoints from before `max_pixels` read it as the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DecodeLimits {
    /// The most pixels (width x height) an image may declare: what refuses a decompression bomb
    /// whatever its shape, while a 20000x1 strip or a 24000x3000 panorama decodes.
    pub max_pixels: u64,
    /// The widest and the tallest image decoded, in pixels. `u32::MAX`, the default, is no limit
    /// of its own: each format's header caps its sides (65535 for JPEG and GIF, 16383 for WebP),
    /// and `max_pixels` bounds the rest.
    pub max_side: u32,
    /// The most bytes an image's decoded pixels may take, as stored (width x height x bytes per
    /// pixel: 3 for RGB8, 4 for RGBA8, 6 for RGB16); the memory bound of a decode, which holds at
    /// most three times this (see the module's notes). The decoders' own allocations are held to
    /// it too.
    pub max_pixel_bytes: u64,
    /// The largest image file read, in bytes.
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    /// 178,956,970 pixels (Pillow's: above it `Image.open` raises `DecompressionBombError`), no
    /// side limit of its own, 512 MiB of pixels as stored (the `image` crate's own default) and
    /// 256 MiB of file. Pillow's pixel limit is 512 MiB of RGB8, so 8-bit gray and RGB images meet
    /// the pixel limit first; RGBA8 images meet the byte limit at 134 megapixels, 16-bit RGB at
    /// 89 (Pillow's `MAX_IMAGE_PIXELS`, where it warns).
    fn default() -> Self {
        Self { max_pixels: 178_956_970, max_side: u32::MAX, max_pixel_bytes: 512 << 20, max_file_bytes: 256 << 20 }
    }
}

impl DecodeLimits {
    /// Checks that no limit is zero.
    pub fn validate(&self) -> crate::Result<()> {
        if self.max_pixels == 0 || self.max_side == 0 || self.max_pixel_bytes == 0 || self.max_file_bytes == 0 {
            return Err(crate::Error::Invalid(format!("decode limits must not be zero: {self:?}")));
        }
        Ok(())
    }

    /// The bytes of the image file at `path`, if it is a regular file within
    /// [`DecodeLimits::max_file_bytes`].
    pub fn read_file(&self, path: &std::path::Path) -> Result<Vec<u8>, ReadError> {
        read_bounded(path, self.max_file_bytes)
    }
}

/// A decoded and resized image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedImage {
    /// Planar (CHW) u8, `InputFormat::sample_len` values.
    pub pixels: Vec<u8>,
    /// The format found in the content.
    pub format: ImageFormat,
    /// (width, height) of the image as stored, before orientation and resizing.
    pub original_size: (u32, u32),
}

/// Decodes an image file's bytes (whatever its name says) within `limits` and prepares it per
/// `input`: EXIF orientation applied; 16-bit, alpha, palette and grayscale converted to RGB8 (alpha
/// dropped, as Keras and PIL's `convert("RGB")` do) or to 8-bit luma; resized per `input.fit` with
/// a triangle filter; planar (CHW) u8 out.
pub fn decode_and_resize(
    bytes: &[u8],
    input: &InputFormat,
    limits: &DecodeLimits,
) -> Result<DecodedImage, DecodeError> {
    // A gray image stays gray until it is resized (so the conversion never takes more than the
    // pixels as stored, where RGB would take three times): `planar` repeats its one plane for an
    // RGB model, as converting it first would have.
    let (image, format, original_size) = decode(bytes, limits, |image| {
        if input.channels == 1 || !image.color().has_color() {
            DynamicImage::ImageLuma8(image.into_luma8())
        } else {
            DynamicImage::ImageRgb8(image.into_rgb8())
        }
    })?;
    let pixels = match image {
        DynamicImage::ImageLuma8(gray) => planar(&fit_to(&gray, input), input.channels),
        image => planar(&fit_to(&image.into_rgb8(), input), input.channels),
    };
    Ok(DecodedImage { pixels, format, original_size })
}

/// Decodes an image file's bytes within `limits` as RGB8 at its own size, EXIF orientation
/// applied (for drawing the image as the user sees it).
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let (image, _, _) = decode(bytes, limits, |image| DynamicImage::ImageRgb8(image.into_rgb8()))?;
    Ok(image.into_rgb8())
}

/// The one decode path: format from the content, the header checked against `limits`, the pixels
/// decoded and converted by `convert`, then oriented. Returns the image, its format and its size
/// as stored.
fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    convert: impl FnOnce(DynamicImage) -> DynamicImage,
) -> Result<(DynamicImage, ImageFormat, (u32, u32)), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| DecodeError::NotAnImage)?;
    let format = reader.format().ok_or(DecodeError::NotAnImage)?;
    let name = format_name(format);
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(DecodeError::Truncated {
            format: name,
            detail: "the data ends before the end-of-image marker".into(),
        });
    }
    // The PNG decoder refuses a row over the byte limit before it gives the image's size, as
    // "memory limit exceeded": a strip bomb is told by the size its IHDR chunk declares instead.
    if format == ImageFormat::Png
        && let Some(size) = png_declared_size(bytes)
    {
        check_declared_size(&name, size, limits)?;
    }
    // The decoders' own allocations (PNG's chunks, GIF's frames, TIFF's strips) are held to the
    // byte limit. They get no width or height limit: the size is checked below, before a pixel is
    // allocated, with a message that says what the header declares and which limit it is over.
    let mut decoder_limits = Limits::no_limits();
    decoder_limits.max_alloc = Some(limits.max_pixel_bytes);
    reader.limits(decoder_limits);
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let unreadable = |e: image::ImageError| classify(&name, e);
        let decoder = reader.into_decoder().map_err(unreadable)?;
        let original_size = decoder.dimensions();
        check_declared_size(&name, original_size, limits)?;
        check_declared_bytes(&name, original_size, decoder.total_bytes(), limits)?;
        decode_pixels(decoder).map_err(unreadable).map(|(image, orientation)| (image, orientation, original_size))
    }));
    let (image, orientation, original_size) = decoded
        .map_err(|panic| DecodeError::DecoderPanicked { format: name.clone(), detail: panic_message(&panic) })??;
    let mut image = convert(image);
    image.apply_orientation(orientation);
    Ok((image, format, original_size))
}

/// The pixels and the EXIF orientation of a decoder whose header has passed the limits.
fn decode_pixels(mut decoder: impl ImageDecoder) -> image::ImageResult<(DynamicImage, image::metadata::Orientation)> {
    // A broken EXIF block is no reason to lose the image: it keeps the stored orientation.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    Ok((DynamicImage::from_decoder(decoder)?, orientation))
}

/// The size an image's header declares, against the pixel and side limits.
fn check_declared_size(format: &str, (width, height): (u32, u32), limits: &DecodeLimits) -> Result<(), DecodeError> {
    let limit = if u64::from(width) * u64::from(height) > limits.max_pixels {
        SizeLimit::Pixels(limits.max_pixels)
    } else if width > limits.max_side || height > limits.max_side {
        SizeLimit::Side(limits.max_side)
    } else {
        return Ok(());
    };
    Err(DecodeError::TooLarge { format: format.to_string(), width, height, limit })
}

/// The bytes an image's declared pixels take as stored, against the byte limit.
fn check_declared_bytes(
    format: &str,
    (width, height): (u32, u32),
    bytes: u64,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    if bytes > limits.max_pixel_bytes {
        let format = format.to_string();
        return Err(DecodeError::TooManyBytes { format, width, height, bytes, limit: limits.max_pixel_bytes });
    }
    Ok(())
}

/// The width and height in a PNG's IHDR chunk, which comes first, right after the signature.
fn png_declared_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24)?;
    let field = |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    (&ihdr[..4] == b"IHDR").then(|| (field(4), field(8)))
}

/// What a caught panic said, when it said it as text.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The format's name as people write it: JPEG, PNG, WEBP...
pub fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

/// Pixels in [0, 1]: `value / 255` for each u8.
pub fn to_f32_planar(pixels: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; pixels.len()];
    to_f32_into(pixels, &mut out);
    out
}

/// [`to_f32_planar`] into a buffer of the same length (a batch slot).
pub fn to_f32_into(pixels: &[u8], out: &mut [f32]) {
    for (value, &byte) in out.iter_mut().zip(pixels) {
        *value = f32::from(byte) / 255.0;
    }
}

/// Planar (CHW) u8 pixels of `input` as an RGB picture, for drawing: a grayscale input as gray.
pub fn planar_to_rgb(pixels: &[u8], input: &InputFormat) -> RgbImage {
    let (height, width) = input.size;
    let plane = (height * width) as usize;
    RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        let channel = |c: usize| pixels[if input.channels == 1 { i } else { c * plane + i }];
        Rgb([channel(0), channel(1), channel(2)])
    })
}

/// An I/O error inside a decoder means its reader ran out of bytes: the file is cut short.
fn classify(format: &str, error: image::ImageError) -> DecodeError {
    let detail = error.to_string();
    let truncated = match &error {
        image::ImageError::IoError(e) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => ["eof", "end of file", "unexpected end", "truncated", "no more bytes"]
            .iter()
            .any(|hint| detail.to_lowercase().contains(hint)),
    };
    let format = format.to_string();
    if truncated { DecodeError::Truncated { format, detail } } else { DecodeError::Unreadable { format, detail } }
}

/// Whether a JPEG has its end-of-image marker (FF D9) after the start of its last scan (FF DA).
/// The JPEG decoder fills a cut-off scan with grey instead of failing; this finds such files.
/// Scan data cannot hold FF D9 (an FF there is followed by 00 or a restart marker), and an EXIF
/// thumbnail's own markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(start) => bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Brings `image` (gray or RGB) to the input size per its fit.
fn fit_to<P: Pixel<Subpixel = u8> + 'static>(
    image: &ImageBuffer<P, Vec<u8>>,
    input: &InputFormat,
) -> ImageBuffer<P, Vec<u8>> {
    let (height, width) = input.size;
    let (w, h) = image.dimensions();
    match input.fit {
        Fit::Stretch => resize(image, width, height),
        Fit::CenterCrop => {
            // Crop the source to the target's aspect ratio, then resize: (w/h > width/height) = wider.
            let (cw, ch) = if u64::from(w) * u64::from(height) > u64::from(h) * u64::from(width) {
                (scaled(h, width, height).min(w), h)
            } else {
                (w, scaled(w, height, width).min(h))
            };
            resize(&*image.view((w - cw) / 2, (h - ch) / 2, cw, ch), width, height)
        }
        Fit::Pad => {
            let (nw, nh) = if u64::from(w) * u64::from(height) > u64::from(h) * u64::from(width) {
                (width, scaled(h, width, w).min(height))
            } else {
                (scaled(w, height, h).min(width), height)
            };
            let mut canvas = ImageBuffer::new(width, height); // black
            let inner = resize(image, nw, nh);
            image::imageops::replace(&mut canvas, &inner, i64::from((width - nw) / 2), i64::from((height - nh) / 2));
            canvas
        }
    }
}

/// `value * numerator / denominator`, rounded, at least 1.
fn scaled(value: u32, numerator: u32, denominator: u32) -> u32 {
    let exact = u64::from(value) * u64::from(numerator);
    let rounded = (exact + u64::from(denominator) / 2) / u64::from(denominator);
    rounded.clamp(1, u64::from(u32::MAX)) as u32
}

/// Triangle-filtered resize to exactly `width` x `height`. The filter resamples the columns
/// first, holding the image at the source's width and the target's height between its passes
/// (16 bytes a pixel); an image that would hold more that way than rows first (a 20000x1 strip:
/// 20000 columns at the target's height) is resampled transposed, rows first. The two orders give
/// the same pixels but for float rounding.
fn resize<I>(image: &I, width: u32, height: u32) -> ImageBuffer<I::Pixel, Vec<u8>>
where
    I: GenericImageView,
    I::Pixel: Pixel<Subpixel = u8> + 'static,
{
    let (w, h) = image.dimensions();
    if u64::from(width) * u64::from(h) < u64::from(w) * u64::from(height) {
        let resized = image::imageops::resize(&Transposed(image), height, width, FilterType::Triangle);
        let view = Transposed(&resized);
        ImageBuffer::from_fn(width, height, |x, y| view.get_pixel(x, y))
    } else {
        image::imageops::resize(image, width, height, FilterType::Triangle)
    }
}

/// An image seen with its rows as columns, unchanged in memory.
struct Transposed<'a, I>(&'a I);

impl<I: GenericImageView> GenericImageView for Transposed<'_, I> {
    type Pixel = I::Pixel;

    fn dimensions(&self) -> (u32, u32) {
        let (width, height) = self.0.dimensions();
        (height, width)
    }

    fn get_pixel(&self, x: u32, y: u32) -> Self::Pixel {
        self.0.get_pixel(y, x)
    }
}

/// Interleaved (HWC) gray or RGB pixels to `channels` planes (CHW): a gray image's one plane
/// repeated for an RGB model.
fn planar<P: Pixel<Subpixel = u8>>(image: &ImageBuffer<P, Vec<u8>>, channels: usize) -> Vec<u8> {
    let interleaved = image.as_raw();
    let stored = usize::from(P::CHANNEL_COUNT);
    if stored == 1 {
        return interleaved.repeat(channels);
    }
    let plane = interleaved.len() / stored;
    let mut out = vec![0u8; interleaved.len()];
    for (i, pixel) in interleaved.chunks_exact(stored).enumerate() {
        for (c, &value) in pixel.iter().enumerate() {
            out[c * plane + i] = value;
        }
    }
    out
}
