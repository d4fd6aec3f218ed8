//! The PNG plots of a run: training curves, class frequencies per split, the confusion matrix, a
//! grid of predicted images, and an explained image's card.
//!
//! plotters draws into an RGB buffer, which the `image` crate encodes as PNG; the file is written
//! through a temporary file renamed into place, like every file the user keeps. Text uses DejaVu
//! Sans compiled into the binary (the `dejavu` crate, Bitstream Vera licence), registered with
//! plotters' ab_glyph text renderer, so no system font is needed at run time.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::OnceLock;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use super::metrics::ConfusionMatrix;
use crate::model::history::{EpochRecord, History};
use crate::{Error, Result};

/// Size in pixels of [`training_curves`]' image.
pub const TRAINING_CURVES_SIZE: (u32, u32) = (1200, 500);
/// Size in pixels of [`class_counts`]' image.
pub const CLASS_COUNTS_SIZE: (u32, u32) = (1000, 500);
/// Pixels per class of [`confusion_matrix`]'s image, which is `160 + 90 * classes` on each side.
pub const CONFUSION_CELL: u32 = 90;
/// Margin and axis room of [`confusion_matrix`]'s image.
pub const CONFUSION_FRAME: u32 = 160;
/// Side of the square each image of [`prediction_grid`] is scaled to fit.
pub const GRID_IMAGE: u32 = 160;
/// Height of the caption strip under each image of [`prediction_grid`].
pub const GRID_CAPTION: u32 = 48;
/// Height of [`prediction_grid`]'s title and legend above the tiles.
pub const GRID_LEGEND: u32 = 52;
/// Space around each tile of [`prediction_grid`].
pub const GRID_PAD: u32 = 10;

/// The font family name the embedded font is registered under (plotters' default family).
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(0, 128, 0);
const RED: RGBColor = RGBColor(200, 0, 0);
/// Split colours of [`class_counts`], in turn (matplotlib's first colours).
const PALETTE: [RGBColor; 6] =
    [BLUE, ORANGE, RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), Box<dyn StdError>>;

/// One image of [`prediction_grid`] with its caption.
#[derive(Clone, Debug)]
pub struct GridItem {
    pub image: RgbImage,
    /// Which file the image is (its name), drawn above the caption.
    pub file: String,
    /// e.g. `happy 87%`.
    pub caption: String,
    /// Whether the prediction matches the true label: the caption is green when right, red when
    /// wrong, black when the true label is unknown.
    pub correct: Option<bool>,
}

/// Loss (left) and accuracy (right) per epoch, train and validation, with a dashed line where the
/// learning rate dropped. Written as a PNG of [`TRAINING_CURVES_SIZE`].
pub fn training_curves(history: &History, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if history.epochs.is_empty() {
        return Err(plot_error(path, "the training history holds no epoch"));
    }
    let epochs = &history.epochs;
    let last = epochs.iter().map(|r| r.epoch).max().unwrap_or(1);
    // The learning rate of epoch e dropped from that of the epoch before: a line between the two.
    let lr_drops: Vec<f64> = epochs.windows(2).filter(|w| w[1].lr < w[0].lr).map(|w| w[1].epoch as f64 - 0.5).collect();
    let series = |value: fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs.iter().filter_map(|r| value(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v))).collect()
    };
    let loss = [series(|r| Some(r.loss)), series(|r| r.val_loss)];
    let highest_loss = loss.iter().flatten().map(|&(_, v)| v).fold(0.0, f64::max);
    let panels = [
        Panel {
            title: "Loss",
            y_range: 0.0..(highest_loss * 1.05).max(1e-3),
            lines: loss,
            legend: SeriesLabelPosition::UpperRight,
        },
        Panel {
            title: "Accuracy",
            y_range: 0.0..1.0,
            lines: [series(|r| Some(r.accuracy)), series(|r| r.val_accuracy)],
            legend: SeriesLabelPosition::LowerRight,
        },
    ];
    render(path, TRAINING_CURVES_SIZE, |root| {
        for (area, panel) in root.split_evenly((1, 2)).iter().zip(&panels) {
            curves_panel(area, panel, last, &lr_drops)?;
        }
        Ok(())
    })
}

/// One metric of [`training_curves`]: its train and validation lines, (epoch, value) each.
struct Panel {
    title: &'static str,
    y_range: std::ops::Range<f64>,
    lines: [Vec<(f64, f64)>; 2],
    legend: SeriesLabelPosition,
}

/// Draws `panel` over epochs 1..=`last`, with a dashed line at each of `lr_drops`.
fn curves_panel(area: &Area, panel: &Panel, last: usize, lr_drops: &[f64]) -> DrawResult {
    let y_range = panel.y_range.clone();
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(epoch_axis(last), y_range.clone())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.title.to_lowercase())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, &x) in lr_drops.iter().enumerate() {
        let dashes = DashedLineSeries::new([(x, y_range.start), (x, y_range.end)], 6, 4, BLACK.mix(0.4).into());
        let drawn = chart.draw_series(dashes)?;
        if i == 0 {
            // One legend entry for all the drop lines.
            drawn.label("learning rate drop").legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
        }
    }
    for ((points, name), color) in panel.lines.iter().zip(["train", "validation"]).zip([BLUE, ORANGE]) {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)).point_size(3))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart, panel.legend.clone())
}

/// How many samples of each class every split holds, as grouped bars labelled with their counts.
/// `splits` are (split name, one count per class). Written as a PNG of [`CLASS_COUNTS_SIZE`].
pub fn class_counts(class_names: &[String], splits: &[(&str, Vec<usize>)], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if class_names.is_empty() || splits.is_empty() {
        return Err(plot_error(path, "class counts need at least one class and one split"));
    }
    if let Some((name, counts)) = splits.iter().find(|(_, counts)| counts.len() != class_names.len()) {
        return Err(plot_error(
            path,
            format!("split {name:?} has {} counts for {} classes", counts.len(), class_names.len()),
        ));
    }
    let highest = splits.iter().flat_map(|(_, counts)| counts).copied().max().unwrap_or(0).max(1);
    let bar_width = 0.8 / splits.len() as f64;
    render(path, CLASS_COUNTS_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Samples per class", (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(category_axis(class_names.len()), 0.0..highest as f64 * 1.12)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("class")
            .y_desc("samples")
            .x_label_formatter(&|x| category_name(class_names, *x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .light_line_style(TRANSPARENT)
            .draw()?;
        for (s, ((split, counts), color)) in splits.iter().zip(PALETTE.iter().cycle()).enumerate() {
            let left = |class: usize| class as f64 - 0.4 + s as f64 * bar_width;
            let bars = counts.iter().enumerate().map(|(class, &count)| {
                Rectangle::new([(left(class), 0.0), (left(class) + bar_width, count as f64)], color.filled())
            });
            chart
                .draw_series(bars)?
                .label(*split)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
            let label_style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(counts.iter().enumerate().map(|(class, &count)| {
                Text::new(count.to_string(), (left(class) + bar_width / 2.0, count as f64), label_style.clone())
            }))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// A chart over categories or epochs (x) and values (y).
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<TickedAxis, RangedCoordf64>>;

/// The legend of the labelled series of `chart`, in a framed box at `position`.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 15))
        .position(position)
        .draw()?;
    Ok(())
}

/// The confusion matrix as a heat map: true classes down the rows, predicted classes across the
/// columns, the count written in every cell. Written as a square PNG of
/// [`CONFUSION_FRAME`] + [`CONFUSION_CELL`] pixels per class on each side.
pub fn confusion_matrix(matrix: &ConfusionMatrix, title: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let classes = matrix.classes();
    let n = classes.len();
    if n == 0 {
        return Err(plot_error(path, "the confusion matrix has no class"));
    }
    let side = CONFUSION_FRAME + CONFUSION_CELL * n as u32;
    let highest = (0..n).flat_map(|t| (0..n).map(move |p| (t, p))).map(|(t, p)| matrix.count(t, p)).max();
    let highest = highest.unwrap_or(0).max(1) as f64;
    // Row t (true class t) is drawn at height n-1-t so that the first class is at the top.
    let row_y = |t: usize| (n - 1 - t) as f64;
    render(path, (side, side), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(category_axis(n), category_axis(n))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_label_formatter(&|x| category_name(classes, *x))
            .y_label_formatter(&|y| category_name(classes, (n - 1) as f64 - *y))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 16))
            .draw()?;
        let cells = (0..n).flat_map(|t| (0..n).map(move |p| (t, p)));
        chart.draw_series(cells.clone().map(|(t, p)| {
            let shade = matrix.count(t, p) as f64 / highest;
            let (x, y) = (p as f64, row_y(t));
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], heat(shade).filled())
        }))?;
        chart.draw_series(cells.map(|(t, p)| {
            let shade = matrix.count(t, p) as f64 / highest;
            let ink = if shade > 0.5 { &WHITE } else { &BLACK };
            let style = TextStyle::from((FONT, 20).into_font()).color(ink).pos(Pos::new(HPos::Center, VPos::Center));
            Text::new(matrix.count(t, p).to_string(), (p as f64, row_y(t)), style)
        }))?;
        Ok(())
    })
}

/// White (0) to dark blue (1).
fn heat(shade: f64) -> RGBColor {
    let mix = |light: f64, dark: f64| (light + (dark - light) * shade.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

/// A linear axis with ticks exactly at `ticks`. (plotters' `with_key_points` does this too, but its
/// result over f64 takes no label formatter, which the category axes need.)
#[derive(Clone)]
struct TickedAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// Epochs 1..=`last` with half an epoch of room each side, ticks at whole epochs (about 10 at most).
fn epoch_axis(last: usize) -> TickedAxis {
    let step = last.div_ceil(10).max(1);
    TickedAxis { linear: (0.5..last as f64 + 0.5).into(), ticks: (1..=last).step_by(step).map(|e| e as f64).collect() }
}

/// An axis of `n` categories centred on 0, 1, ..., n-1, with a tick at each.
fn category_axis(n: usize) -> TickedAxis {
    TickedAxis { linear: (-0.5..n as f64 - 0.5).into(), ticks: (0..n).map(|i| i as f64).collect() }
}

/// The name of the category at axis position `x` (empty between categories).
fn category_name(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
}

/// The images in a near-square grid, each scaled to fit [`GRID_IMAGE`] pixels square with its file
/// name and its caption below, the caption in green (right), red (wrong) or black (unknown), under
/// `title` (what the images are, which model predicted them) and a legend. Each tile is `GRID_IMAGE + 2 * GRID_PAD` wide and
/// `GRID_IMAGE + GRID_CAPTION + 2 * GRID_PAD` high; the legend takes [`GRID_LEGEND`] above them.
pub fn prediction_grid(items: &[GridItem], title: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if items.is_empty() {
        return Err(plot_error(path, "no images for the grid"));
    }
    if let Some(i) = items.iter().position(|item| item.image.width() == 0 || item.image.height() == 0) {
        return Err(plot_error(path, format!("image {i} of the grid is empty")));
    }
    let columns = (items.len() as f64).sqrt().ceil() as u32;
    let rows = (items.len() as u32).div_ceil(columns);
    let (tile_w, tile_h) = (GRID_IMAGE + 2 * GRID_PAD, GRID_IMAGE + GRID_CAPTION + 2 * GRID_PAD);
    let tile_origin = |i: usize| ((i as u32 % columns) * tile_w, GRID_LEGEND + (i as u32 / columns) * tile_h);
    let width = columns * tile_w;
    let mut canvas = blank((width, GRID_LEGEND + rows * tile_h));
    draw_on(&mut canvas, |root| {
        // The true class is the image's folder's name, when that is one of the model's classes.
        let legend = "predicted: green right, red wrong, black no true class";
        draw_fitted(root, title, (width / 2, 16), 17.0, width - 2 * GRID_PAD, &BLACK)?;
        draw_fitted(root, legend, (width / 2, 40), 13.0, width - 2 * GRID_PAD, &RGBColor(90, 90, 90))?;
        for (i, item) in items.iter().enumerate() {
            let (x, y) = tile_origin(i);
            let color = match item.correct {
                Some(true) => GREEN,
                Some(false) => RED,
                None => BLACK,
            };
            let strip = y + GRID_PAD + GRID_IMAGE;
            draw_fitted(
                root,
                &item.file,
                (x + tile_w / 2, strip + GRID_CAPTION / 4),
                13.0,
                GRID_IMAGE,
                &RGBColor(90, 90, 90),
            )?;
            draw_fitted(
                root,
                &item.caption,
                (x + tile_w / 2, strip + 3 * GRID_CAPTION / 4 - 2),
                18.0,
                GRID_IMAGE,
                &color,
            )?;
        }
        Ok(())
    })
    .map_err(|e| plot_error(path, e))?;
    for (i, item) in items.iter().enumerate() {
        let (x, y) = tile_origin(i);
        let scale = f64::from(GRID_IMAGE) / f64::from(item.image.width().max(item.image.height()));
        let (w, h) = (
            (f64::from(item.image.width()) * scale).round() as u32,
            (f64::from(item.image.height()) * scale).round() as u32,
        );
        let scaled = imageops::resize(&item.image, w.max(1), h.max(1), FilterType::Triangle);
        let (left, top) =
            (x + GRID_PAD + (GRID_IMAGE - scaled.width()) / 2, y + GRID_PAD + (GRID_IMAGE - scaled.height()) / 2);
        imageops::replace(&mut canvas, &scaled, i64::from(left), i64::from(top));
    }
    save_png(&canvas, path)
}

/// Space around and between the panels of [`explanation_card`].
pub const CARD_PAD: u32 = 10;
/// Height of [`explanation_card`]'s caption strip.
pub const CARD_CAPTION: u32 = 36;

/// Width of [`explanation_card`]'s colour scale: the bar and its labels.
pub const CARD_SCALE: u32 = 70;
/// Width of the colour bar inside it.
const CARD_SCALE_BAR: u32 = 18;

/// `panels` side by side on white (e.g. an image and its heat map), tops aligned, then the colour
/// scale of the heat map (`colours` of 0 at the bottom to 1 at the top, labelled), with
/// `caption` centred under them in black (scaled down to the card's width if longer). The card is
/// `CARD_PAD` around and between the panels and the scale ([`CARD_SCALE`] wide), plus
/// [`CARD_CAPTION`] below.
pub fn explanation_card(
    panels: &[RgbImage],
    colours: fn(f32) -> [u8; 3],
    caption: &str,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    if panels.is_empty() || panels.iter().any(|p| p.width() == 0 || p.height() == 0) {
        return Err(plot_error(path, "an explanation card needs at least one non-empty image"));
    }
    let panels_height = panels.iter().map(RgbImage::height).max().unwrap_or(0);
    let width = CARD_PAD + panels.iter().map(|p| p.width() + CARD_PAD).sum::<u32>() + CARD_SCALE;
    let height = CARD_PAD + panels_height + CARD_CAPTION;
    let mut canvas = blank((width, height));
    let mut left = CARD_PAD;
    for panel in panels {
        imageops::replace(&mut canvas, panel, i64::from(left), i64::from(CARD_PAD));
        left += panel.width() + CARD_PAD;
    }
    // The bar spans the panels' height less room for its labels.
    let (bar_top, bar_bottom) = (CARD_PAD + 16, CARD_PAD + panels_height - 16);
    for y in bar_top..bar_bottom {
        let t = (bar_bottom - 1 - y) as f32 / (bar_bottom - bar_top - 1).max(1) as f32;
        for x in left..left + CARD_SCALE_BAR {
            canvas.put_pixel(x, y, Rgb(colours(t)));
        }
    }
    draw_on(&mut canvas, |root| {
        let label = |text: &str, y: u32| {
            let style = TextStyle::from((FONT, 13).into_font()).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(text, ((left + CARD_SCALE_BAR + 4) as i32, y as i32), style))
        };
        label("high", bar_top + 6)?;
        label("low", bar_bottom - 6)?;
        let centre = (left + CARD_SCALE_BAR / 2) as i32;
        let style = TextStyle::from((FONT, 12).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new("1", (centre, (bar_top - 8) as i32), style.clone()))?;
        root.draw(&Text::new("0", (centre, (bar_bottom + 8) as i32), style))?;
        draw_fitted(root, caption, (width / 2, height - CARD_CAPTION / 2), 18.0, width - 2 * CARD_PAD, &BLACK)
    })
    .map_err(|e| plot_error(path, e))?;
    save_png(&canvas, path)
}

/// Draws a chart of `size` pixels with `draw` on a white canvas and writes it to `path` as PNG.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult) -> Result<()> {
    let mut canvas = blank(size);
    draw_on(&mut canvas, draw).map_err(|e| plot_error(path, e))?;
    save_png(&canvas, path)
}

fn blank((width, height): (u32, u32)) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb([255, 255, 255]))
}

/// Runs `draw` on a plotters drawing area over `canvas`, with the embedded font registered.
/// `text` centred at `centre` in `color`, at `size` unless that is wider than `room`: then scaled
/// down to fit it.
fn draw_fitted(root: &Area, text: &str, centre: (u32, u32), size: f64, room: u32, color: &RGBColor) -> DrawResult {
    let (text_width, _) = root.estimate_text_size(text, &(FONT, size).into())?;
    let size = if text_width > room { size * f64::from(room) / f64::from(text_width) } else { size };
    let style = TextStyle::from((FONT, size).into_font()).color(color).pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(text, (centre.0 as i32, centre.1 as i32), style))?;
    Ok(())
}

fn draw_on(canvas: &mut RgbImage, draw: impl FnOnce(&Area) -> DrawResult) -> DrawResult {
    register_embedded_font()?;
    let size = canvas.dimensions();
    let root = BitMapBackend::with_buffer(canvas, size).into_drawing_area();
    draw(&root)?;
    root.present()?;
    Ok(())
}

/// Registers DejaVu Sans under [`FONT`], once per process (plotters falls back to it for every style).
fn register_embedded_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded DejaVu Sans font does not load".to_string())
        })
        .clone()
}

/// Encodes `canvas` as PNG and writes it to `path` through a temporary file renamed into place.
fn save_png(canvas: &RgbImage, path: &Path) -> Result<()> {
    let mut png = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut png, image::ImageFormat::Png).map_err(|e| plot_error(path, e))?;
    crate::model::file::write_atomically(path, png.get_ref()).map_err(|e| plot_error(path, e))
}

fn plot_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("writing the plot {}: {reason}", path.display()))
}
