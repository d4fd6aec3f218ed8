//! What every plot is drawn on: rectangles, text measured with the embedded font and set into
//! its room (wrapped, set smaller, shortened), the canvas it is drawn on, and the PNG written.

use std::error::Error as StdError;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontStyle, FontTransform, register_font};

use crate::{Error, Result};

/// The font family name the embedded font is registered under (plotters' default family).
const FONT: &str = "sans-serif";
/// DejaVu Sans' ascender over its ascender plus descender (hhea 1901 and -483 units): ab_glyph
/// scales the font so that the two add up to the font size.
const ASCENT: f64 = 1901.0 / 2384.0;
/// Distance between the tops of consecutive lines, in font sizes.
const LINE_STEP: f64 = 1.2;
const ELLIPSIS: char = '…';
/// Pixels the drawn glyphs may pass the font's metrics by: plotters rounds each glyph's box outwards
/// and its position down, and some glyphs' ink passes their advance (`_`, which lines often end with).
const INK_SLACK: i32 = 2;

// How each kind of text is set.
pub(super) const TITLE: Style = Style { size: 22.0, smallest: 15.0, lines: 6 };
pub(super) const AXIS_NAME: Style = Style { size: 16.0, smallest: 12.0, lines: 1 };
pub(super) const LEGEND: Style = Style { size: 15.0, smallest: 11.0, lines: 1 };
pub(super) const NUMBER_TICK: Style = Style { size: 13.0, smallest: 9.0, lines: 1 };
pub(super) const CLASS_TICK: Style = Style { size: 13.0, smallest: 9.0, lines: 10 };
pub(super) const MATRIX_TICK: Style = Style { size: 16.0, smallest: 10.0, lines: 8 };
pub(super) const BAR_VALUE: Style = Style { size: 14.0, smallest: 10.0, lines: 1 };
pub(super) const CELL_VALUE: Style = Style { size: 20.0, smallest: 10.0, lines: 3 };
pub(super) const GRID_TITLE: Style = Style { size: 17.0, smallest: 12.0, lines: 8 };
pub(super) const GRID_KEY: Style = Style { size: 13.0, smallest: 10.0, lines: 3 };
pub(super) const GRID_FILE: Style = Style { size: 13.0, smallest: 9.0, lines: 2 };
pub(super) const GRID_PREDICTION: Style = Style { size: 18.0, smallest: 11.0, lines: 3 };
pub(super) const CARD_TEXT: Style = Style { size: 18.0, smallest: 12.0, lines: 6 };
pub(super) const SCALE_WORD: Style = Style { size: 13.0, smallest: 10.0, lines: 1 };
pub(super) const SCALE_END: Style = Style { size: 12.0, smallest: 10.0, lines: 1 };

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
pub(super) type DrawResult = std::result::Result<(), Box<dyn StdError>>;
/// The result of laying a picture out: the reason as text when it cannot be.
pub(super) type Planned<T> = std::result::Result<T, String>;

/// A rectangle of pixels: columns `left..right`, rows `top..bottom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
}

impl Rect {
    /// `width` by `height` pixels from (`left`, `top`).
    pub fn at(left: i32, top: i32, width: i32, height: i32) -> Rect {
        Rect { left, top, right: left + width, bottom: top + height }
    }

    pub fn width(&self) -> i32 {
        self.right - self.left
    }

    pub fn height(&self) -> i32 {
        self.bottom - self.top
    }

    /// Whether `other` lies wholly inside this rectangle.
    pub fn contains(&self, other: &Rect) -> bool {
        self.left <= other.left && other.right <= self.right && self.top <= other.top && other.bottom <= self.bottom
    }

    /// Whether the two share a pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.left < other.right && other.left < self.right && self.top < other.bottom && other.top < self.bottom
    }

    pub(super) fn inset(&self, by: i32) -> Rect {
        Rect { left: self.left + by, top: self.top + by, right: self.right - by, bottom: self.bottom - by }
    }
}

/// What a piece of text is on its picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// A picture's or a chart's title.
    Title,
    /// What an axis measures (`epoch`, `true`).
    AxisName,
    /// The label of a tick: a number, a class name, an end of a colour scale.
    Tick,
    /// A legend entry, or the prediction grid's key to its colours.
    Legend,
    /// A number written on the data (a bar's count, a cell's count): the only text inside a plot.
    Value,
    /// An image's file name or prediction under it, an explanation card's caption.
    Caption,
}

/// Where a piece of text lines up across its bounds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Across {
    Left,
    Centre,
    Right,
}

/// Where a piece of text lines up down its room.
#[derive(Clone, Copy, Debug)]
pub(super) enum Down {
    Top,
    Middle,
    Bottom,
}

/// One piece of text as a picture draws it.
#[derive(Clone, Debug)]
pub struct PlacedText {
    pub kind: TextKind,
    /// The text in full.
    pub text: String,
    /// Its lines as drawn: the text wrapped, the last line ending in "…" where it had to be cut short.
    pub lines: Vec<String>,
    /// The font size in pixels.
    pub size: f64,
    /// The pixels its glyphs cover, as measured with the embedded font.
    pub bounds: Rect,
    /// The space set aside for it.
    pub room: Rect,
    color: RGBColor,
    across: Across,
    /// Turned a quarter anticlockwise to read upwards (a y axis' name).
    turned: bool,
}

/// Where a picture puts its data and its text.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The picture's size in pixels.
    pub size: (u32, u32),
    /// Where data is drawn (a chart's plot, an image, a colour bar); only values are written there.
    pub plots: Vec<Rect>,
    pub texts: Vec<PlacedText>,
}

/// How a kind of text is set: its font size, the smallest it may shrink to, and the most lines it
/// may wrap onto.
#[derive(Clone, Copy)]
pub(super) struct Style {
    pub(super) size: f64,
    pub(super) smallest: f64,
    lines: usize,
}

/// A piece of text set at one font size: its lines and the width of the widest.
pub(super) struct Block {
    lines: Vec<String>,
    size: f64,
    pub(super) width: i32,
}

impl Block {
    pub(super) fn height(&self) -> i32 {
        text_height(self.lines.len(), self.size)
    }
}

/// Height of `lines` lines at font `size`, each as high as the size (ascender to descender) and
/// [`LINE_STEP`] apart, plus [`INK_SLACK`].
pub(super) fn text_height(lines: usize, size: f64) -> i32 {
    if lines == 0 {
        return 0;
    }
    (size * (1.0 + LINE_STEP * (lines - 1) as f64)).ceil() as i32 + INK_SLACK
}

/// Width in pixels of `text` at font `size` in the embedded font: plotters' estimate (the sum of the
/// glyphs' advances, rounded down), plus [`INK_SLACK`] and a pixel for the rounding.
pub(super) fn text_width(text: &str, size: f64) -> Planned<i32> {
    if text.is_empty() {
        return Ok(0);
    }
    let (width, _) = FontDesc::from((FONT, size)).box_size(text).map_err(|e| format!("measuring text: {e}"))?;
    Ok(width as i32 + 1 + INK_SLACK)
}

/// `text` set within `width` by `height` pixels: on as few lines as fit at the largest size the
/// style allows, breaking inside words only where breaking between them is not enough, and cut
/// short with "…" only where even the smallest size needs more lines than fit.
pub(super) fn set(text: &str, (width, height): (i32, i32), style: Style) -> Planned<Block> {
    let steps = (style.size - style.smallest).ceil().max(0.0) as usize;
    let sizes: Vec<f64> = (0..=steps).map(|i| (style.size - i as f64).max(style.smallest)).collect();
    for break_words in [false, true] {
        for &size in &sizes {
            let fitting = wrap(text, size, width, break_words)?
                .filter(|lines| lines.len() <= style.lines && text_height(lines.len(), size) <= height);
            if let Some(lines) = fitting {
                return block(lines.into_iter().map(|line| text[line].trim().to_string()).collect(), size);
            }
        }
    }
    // Too long even at the smallest size: the lines that fit, the last one cut short.
    let size = style.smallest;
    let lines = wrap(text, size, width, true)?.unwrap_or_default();
    let fitting = (1..=style.lines).rev().find(|&n| text_height(n, size) <= height).unwrap_or(1);
    let mut kept: Vec<String> =
        lines.iter().take(fitting - 1).map(|line| text[line.clone()].trim().to_string()).collect();
    let rest = lines.get(fitting - 1).map_or("", |line| text[line.start..].trim());
    kept.push(shorten(rest, size, width)?);
    block(kept, size)
}

fn block(lines: Vec<String>, size: f64) -> Planned<Block> {
    let width = lines.iter().try_fold(0, |widest, line| Ok::<_, String>(widest.max(text_width(line, size)?)))?;
    Ok(Block { lines, size, width })
}

/// Where `text` breaks into lines no wider than `width` at `size`: between words (after a space,
/// `_`, `-` or `/`) and, if `break_words`, inside a word too wide for a line of its own; `None`
/// where such a word may not be broken. Each line is a range of `text`.
fn wrap(text: &str, size: f64, width: i32, break_words: bool) -> Planned<Option<Vec<Range<usize>>>> {
    let fits = |range: Range<usize>| -> Planned<bool> { Ok(text_width(text[range].trim(), size)? <= width) };
    let mut lines = Vec::new();
    let mut line = 0..0;
    for word in words(text) {
        if fits(line.start..word.end)? {
            line.end = word.end;
            continue;
        }
        if !text[line.clone()].trim().is_empty() {
            lines.push(line);
        }
        line = word.clone();
        if fits(line.clone())? {
            continue;
        }
        if !break_words {
            return Ok(None);
        }
        // As many characters on each line as fit, and at least one.
        line.end = word.start;
        for (i, c) in text[word.clone()].char_indices() {
            let end = word.start + i + c.len_utf8();
            if line.is_empty() || fits(line.start..end)? {
                line.end = end;
            } else {
                lines.push(line.clone());
                line = line.end..end;
            }
        }
    }
    if !text[line.clone()].trim().is_empty() {
        lines.push(line);
    }
    Ok(Some(lines))
}

/// The words of `text`, each with the space, `_`, `-` or `/` that ends it, as ranges of `text`.
fn words(text: &str) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, ' ' | '_' | '-' | '/') {
            words.push(start..i + c.len_utf8());
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        words.push(start..text.len());
    }
    words
}

/// The longest start of `text` that fits `width` at `size` with "…" after it.
fn shorten(text: &str, size: f64, width: i32) -> Planned<String> {
    let mut kept = ELLIPSIS.to_string();
    for (i, c) in text.char_indices() {
        let candidate = format!("{}{ELLIPSIS}", text[..i + c.len_utf8()].trim_end());
        if text_width(&candidate, size)? > width {
            break;
        }
        kept = candidate;
    }
    Ok(kept)
}

/// `text` set to fit `room` and placed in it.
pub(super) fn fit(
    kind: TextKind,
    text: &str,
    room: Rect,
    style: Style,
    align: (Across, Down),
    color: RGBColor,
) -> Planned<PlacedText> {
    let block = set(text, (room.width(), room.height()), style)?;
    Ok(place(kind, text, block, room, align, color))
}

/// Values written on the data, each (text, room, colour), centred across their rooms and at one
/// size, the largest at which every one fits, so that no number looks larger than another.
pub(super) fn fit_values(values: Vec<(String, Rect, RGBColor)>, style: Style, down: Down) -> Planned<Vec<PlacedText>> {
    let size = values.iter().try_fold(style.size, |size, (text, room, _)| {
        Ok::<_, String>(size.min(set(text, (room.width(), room.height()), style)?.size))
    })?;
    let style = Style { size, ..style };
    values
        .iter()
        .map(|(text, room, color)| fit(TextKind::Value, text, *room, style, (Across::Centre, down), *color))
        .collect()
}

/// `block` (the text set) placed in `room`.
pub(super) fn place(
    kind: TextKind,
    text: &str,
    block: Block,
    room: Rect,
    (across, down): (Across, Down),
    color: RGBColor,
) -> PlacedText {
    let (width, height) = (block.width, block.height());
    let left = match across {
        Across::Left => room.left,
        Across::Centre => room.left + (room.width() - width) / 2,
        Across::Right => room.right - width,
    };
    let top = match down {
        Down::Top => room.top,
        Down::Middle => room.top + (room.height() - height) / 2,
        Down::Bottom => room.bottom - height,
    };
    let bounds = Rect::at(left, top, width, height);
    PlacedText {
        kind,
        text: text.to_string(),
        lines: block.lines,
        size: block.size,
        bounds,
        room,
        color,
        across,
        turned: false,
    }
}

/// `block` (the text set as if level) turned to read upwards, centred in `room`.
pub(super) fn place_turned(kind: TextKind, text: &str, block: Block, room: Rect, color: RGBColor) -> PlacedText {
    let (width, height) = (block.height(), block.width);
    let bounds =
        Rect::at(room.left + (room.width() - width) / 2, room.top + (room.height() - height) / 2, width, height);
    let (lines, size) = (block.lines, block.size);
    PlacedText { kind, text: text.to_string(), lines, size, bounds, room, color, across: Across::Centre, turned: true }
}

/// Draws `texts` where they were placed.
fn draw_texts(root: &Area, texts: &[PlacedText]) -> DrawResult {
    for text in texts {
        let font = FontDesc::from((FONT, text.size));
        let font = if text.turned { font.transform(FontTransform::Rotate270) } else { font };
        let style = TextStyle::from(font).color(&text.color).pos(Pos::new(HPos::Left, VPos::Top));
        // plotters puts the baseline half the font size below the point it is given.
        let to_ascender = (ASCENT - 0.5) * text.size;
        let bounds = text.bounds;
        for (i, line) in text.lines.iter().enumerate() {
            let width = text_width(line, text.size)?;
            let offset = (i as f64 * LINE_STEP * text.size + to_ascender).round() as i32;
            let point = if text.turned {
                // Read upwards from the bottom, the first line leftmost.
                (bounds.left + offset, bounds.bottom - 1 - (bounds.height() - width) / 2)
            } else {
                let left = match text.across {
                    Across::Left => bounds.left,
                    Across::Centre => bounds.left + (bounds.width() - width) / 2,
                    Across::Right => bounds.right - width,
                };
                (left, bounds.top + offset)
            };
            root.draw(&Text::new(line.as_str(), point, style.clone()))?;
        }
    }
    Ok(())
}

/// A white canvas of the layout's size with `draw`'s drawing on it, then the layout's texts.
pub(super) fn paint(
    layout: &Layout,
    draw: impl FnOnce(&Area) -> DrawResult,
) -> std::result::Result<RgbImage, Box<dyn StdError>> {
    register_embedded_font()?;
    let (width, height) = layout.size;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    {
        let root = BitMapBackend::with_buffer(&mut canvas, layout.size).into_drawing_area();
        draw(&root)?;
        draw_texts(&root, &layout.texts)?;
        root.present()?;
    }
    Ok(canvas)
}

/// Registers DejaVu Sans under [`FONT`], once per process (plotters falls back to it for every style).
pub(super) fn register_embedded_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font does not load".to_string())
        })
        .clone()
}

/// Encodes `canvas` as PNG and writes it to `path` through a temporary file renamed into place.
pub(super) fn save_png(canvas: &RgbImage, path: &Path) -> Result<()> {
    let mut png = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut png, image::ImageFormat::Png).map_err(|e| plot_error(path, e))?;
    crate::files::write_atomically(path, png.get_ref()).map_err(|e| plot_error(path, e))
}

pub(super) fn plot_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("writing the plot {}: {reason}", path.display()))
}

pub(super) fn layout_error(reason: String) -> Error {
    Error::Invalid(format!("laying out a plot: {reason}"))
}
