//! The PNG plots of a run: training curves, class frequencies per split, the confusion matrix, a
//! grid of predicted images, and an explained image's card.
//!
//! plotters draws into an RGB buffer, which the `image` crate encodes as PNG; the file is written
//! through a temporary file renamed into place, like every file the user keeps. Text uses DejaVu
//! Sans compiled into the binary (the `dejavu` crate, Bitstream Vera licence), registered with
//! plotters' ab_glyph text renderer, so no system font is needed at run time.
//!
//! Each picture is laid out before anything is drawn. Every piece of text gets a room of its own
//! and is measured with the embedded font: wrapped onto more lines (between words first), set
//! smaller down to a floor, and only past that shortened with "…". Rooms grow where the picture
//! can: title and caption strips take the lines they need, axis label rows the height, many
//! classes the width. Each picture's `*_layout` function returns the [`Layout`] its drawing
//! function draws, so that tests can check every text against the canvas, its room and the others.

use std::error::Error as StdError;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontStyle, FontTransform, register_font};

use super::metrics::ConfusionMatrix;
use crate::model::history::{EpochRecord, History};
use crate::{Error, Result};

/// Size in pixels of [`training_curves`]' image.
pub const TRAINING_CURVES_SIZE: (u32, u32) = (1200, 500);
/// Least size in pixels of [`class_counts`]' image: it is wider where the classes and splits need
/// more room for their counts, taller where long class names wrap onto many lines.
pub const CLASS_COUNTS_SIZE: (u32, u32) = (1000, 500);
/// Side in pixels of each cell of [`confusion_matrix`]; the image is as large as the cells, the
/// class names and the title need.
pub const CONFUSION_CELL: u32 = 90;
/// Side of the square each image of [`prediction_grid`] is scaled to fit.
pub const GRID_IMAGE: u32 = 160;
/// Least height of the caption strip under each image of [`prediction_grid`] (more where a file
/// name or a prediction wraps).
pub const GRID_CAPTION: u32 = 48;
/// Least height of [`prediction_grid`]'s title and legend above the tiles (more where they wrap).
pub const GRID_LEGEND: u32 = 52;
/// Space around each tile of [`prediction_grid`].
pub const GRID_PAD: u32 = 10;
/// Space around and between the panels of [`explanation_card`].
pub const CARD_PAD: u32 = 10;
/// Least height of [`explanation_card`]'s caption strip (more where the caption wraps).
pub const CARD_CAPTION: u32 = 36;
/// Width of [`explanation_card`]'s colour scale: the bar and its labels.
pub const CARD_SCALE: u32 = 70;
/// Width of the colour bar inside it.
const CARD_SCALE_BAR: u32 = 18;
/// Least height of the card's panels, so the colour scale and its four labels fit beside them.
const CARD_SCALE_HEIGHT: u32 = 72;

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

/// Space around a chart, and between its title, legend and axis names.
const MARGIN: i32 = 12;
const GAP: i32 = 6;
/// Space between the legend (or title) and the top of the plot, where the top tick's label sits.
const PLOT_GAP: i32 = 12;
/// Length of a tick mark, and the distance from the plot to its label.
const TICK_LENGTH: i32 = 5;
const TICK_GAP: i32 = 8;
/// The least height of a chart's plot.
const MIN_PLOT_HEIGHT: i32 = 200;
/// The widest column of number labels, and of class names beside the confusion matrix.
const NUMBER_COLUMN: i32 = 120;
const CLASS_COLUMN: i32 = 200;
/// The least width of a class on [`class_counts`]' axis.
const CLASS_SLOT: f64 = 64.0;
/// Space on each side of a count over its bar.
const BAR_VALUE_PAD: i32 = 2;
/// Legend swatches: their size, the space to their label, and the space between entries.
const SWATCH: (i32, i32) = (20, 12);
const SWATCH_GAP: i32 = 6;
const ENTRY_GAP: i32 = 18;

// How each kind of text is set.
const TITLE: Style = Style { size: 22.0, smallest: 15.0, lines: 6 };
const AXIS_NAME: Style = Style { size: 16.0, smallest: 12.0, lines: 1 };
const LEGEND: Style = Style { size: 15.0, smallest: 11.0, lines: 1 };
const NUMBER_TICK: Style = Style { size: 13.0, smallest: 9.0, lines: 1 };
const CLASS_TICK: Style = Style { size: 13.0, smallest: 9.0, lines: 10 };
const MATRIX_TICK: Style = Style { size: 16.0, smallest: 10.0, lines: 8 };
const BAR_VALUE: Style = Style { size: 14.0, smallest: 10.0, lines: 1 };
const CELL_VALUE: Style = Style { size: 20.0, smallest: 10.0, lines: 3 };
const GRID_TITLE: Style = Style { size: 17.0, smallest: 12.0, lines: 8 };
const GRID_KEY: Style = Style { size: 13.0, smallest: 10.0, lines: 3 };
const GRID_FILE: Style = Style { size: 13.0, smallest: 9.0, lines: 2 };
const GRID_PREDICTION: Style = Style { size: 18.0, smallest: 11.0, lines: 3 };
const CARD_TEXT: Style = Style { size: 18.0, smallest: 12.0, lines: 6 };
const SCALE_WORD: Style = Style { size: 13.0, smallest: 10.0, lines: 1 };
const SCALE_END: Style = Style { size: 12.0, smallest: 10.0, lines: 1 };

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(0, 128, 0);
const RED: RGBColor = RGBColor(200, 0, 0);
const GREY: RGBColor = RGBColor(90, 90, 90);
/// Split colours of [`class_counts`], in turn (matplotlib's first colours).
const PALETTE: [RGBColor; 6] =
    [BLUE, ORANGE, RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = std::result::Result<(), Box<dyn StdError>>;
/// The result of laying a picture out: the reason as text when it cannot be.
type Planned<T> = std::result::Result<T, String>;

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

    fn inset(&self, by: i32) -> Rect {
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
enum Across {
    Left,
    Centre,
    Right,
}

/// Where a piece of text lines up down its room.
#[derive(Clone, Copy, Debug)]
enum Down {
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
struct Style {
    size: f64,
    smallest: f64,
    lines: usize,
}

/// A piece of text set at one font size: its lines and the width of the widest.
struct Block {
    lines: Vec<String>,
    size: f64,
    width: i32,
}

impl Block {
    fn height(&self) -> i32 {
        text_height(self.lines.len(), self.size)
    }
}

/// Loss (left) and accuracy (right) per epoch, train and validation, with a dashed line where the
/// learning rate dropped. Written as a PNG of [`TRAINING_CURVES_SIZE`].
pub fn training_curves(history: &History, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let plan = plan_training_curves(history).map_err(|e| plot_error(path, e))?;
    let canvas = paint(&plan.layout, |root| {
        for (frame, lines) in &plan.panels {
            draw_frame(root, frame, Grid::Both)?;
            let plot = root.apply_coord_spec(frame.coord.clone());
            let y = frame.coord.y_spec().range();
            for &x in &plan.lr_drops {
                plot.draw(&DashedPathElement::new([(x, y.start), (x, y.end)], 6, 4, BLACK.mix(0.4)))?;
            }
            for (points, color) in lines.iter().zip([BLUE, ORANGE]) {
                for element in LineSeries::new(points.iter().copied(), color.stroke_width(2)).point_size(3) {
                    plot.draw(&element)?;
                }
            }
        }
        Ok(())
    });
    save_png(&canvas.map_err(|e| plot_error(path, e))?, path)
}

/// The layout [`training_curves`] draws for `history`.
pub fn training_curves_layout(history: &History) -> Result<Layout> {
    Ok(plan_training_curves(history).map_err(layout_error)?.layout)
}

/// A metric's train and validation lines, (epoch, value) each.
type TrainAndValidation = [Vec<(f64, f64)>; 2];

/// [`training_curves`]' layout, each panel's chart with its lines, and the epochs between which the
/// learning rate dropped.
struct TrainingPlan {
    layout: Layout,
    panels: Vec<(ChartFrame, TrainAndValidation)>,
    lr_drops: Vec<f64>,
}

fn plan_training_curves(history: &History) -> Planned<TrainingPlan> {
    let epochs = &history.epochs;
    if epochs.is_empty() {
        return Err("the training history holds no epoch".into());
    }
    register_embedded_font()?;
    let last = epochs.iter().map(|r| r.epoch).max().unwrap_or(1);
    // The learning rate of epoch e dropped from that of the epoch before: a line between the two.
    let lr_drops: Vec<f64> = epochs.windows(2).filter(|w| w[1].lr < w[0].lr).map(|w| w[1].epoch as f64 - 0.5).collect();
    let series = |value: fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs.iter().filter_map(|r| value(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v))).collect()
    };
    let loss = [series(|r| Some(r.loss)), series(|r| r.val_loss)];
    let highest_loss = loss.iter().flatten().map(|&(_, v)| v).fold(0.0, f64::max);
    let accuracy = [series(|r| Some(r.accuracy)), series(|r| r.val_accuracy)];
    let metrics = [("Loss", 0.0..(highest_loss * 1.05).max(1e-3), loss), ("Accuracy", 0.0..1.0, accuracy)];
    let (width, height) = (TRAINING_CURVES_SIZE.0 as i32, TRAINING_CURVES_SIZE.1 as i32);
    let mut texts = Vec::new();
    let mut panels = Vec::new();
    for (i, (title, y_range, lines)) in metrics.into_iter().enumerate() {
        // One legend entry for all the drop lines, then the lines drawn.
        let drop = (!lr_drops.is_empty())
            .then(|| LegendEntry { label: "learning rate drop".into(), swatch: Swatch::Line(BLACK.mix(0.4).into()) });
        let drawn =
            lines.iter().zip([("train", BLUE), ("validation", ORANGE)]).filter(|(points, _)| !points.is_empty());
        let legend = drop
            .into_iter()
            .chain(drawn.map(|(_, (label, color))| LegendEntry {
                label: label.into(),
                swatch: Swatch::Line(color.stroke_width(2)),
            }))
            .collect();
        let spec = ChartSpec {
            title,
            x_name: "epoch",
            y_name: &title.to_lowercase(),
            x: epoch_ticks(last),
            y: value_ticks(y_range, false),
            legend,
            y_column: NUMBER_COLUMN,
        };
        let area = Rect::at(i as i32 * width / 2, 0, width / 2, height);
        panels.push((chart_layout(&spec, area, MIN_PLOT_HEIGHT, &mut texts)?, lines));
    }
    let bottom = panels.iter().map(|(frame, _)| frame.bottom).fold(height, i32::max);
    let plots = panels.iter().map(|(frame, _)| frame.plot).collect();
    Ok(TrainingPlan { layout: Layout { size: (width as u32, bottom as u32), plots, texts }, panels, lr_drops })
}

/// How many samples of each class every split holds, as grouped bars labelled with their counts.
/// `splits` are (split name, one count per class). Written as a PNG of at least
/// [`CLASS_COUNTS_SIZE`].
pub fn class_counts(class_names: &[String], splits: &[(&str, Vec<usize>)], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let plan = plan_class_counts(class_names, splits).map_err(|e| plot_error(path, e))?;
    draw_box_chart(&plan, path)
}

/// The layout [`class_counts`] draws.
pub fn class_counts_layout(class_names: &[String], splits: &[(&str, Vec<usize>)]) -> Result<Layout> {
    Ok(plan_class_counts(class_names, splits).map_err(layout_error)?.layout)
}

fn plan_class_counts(class_names: &[String], splits: &[(&str, Vec<usize>)]) -> Planned<BoxChart> {
    if class_names.is_empty() || splits.is_empty() {
        return Err("class counts need at least one class and one split".into());
    }
    if let Some((name, counts)) = splits.iter().find(|(_, counts)| counts.len() != class_names.len()) {
        return Err(format!("split {name:?} has {} counts for {} classes", counts.len(), class_names.len()));
    }
    register_embedded_font()?;
    let highest = splits.iter().flat_map(|(_, counts)| counts).copied().max().unwrap_or(0).max(1);
    let bar_width = 0.8 / splits.len() as f64;
    let colors: Vec<RGBColor> = PALETTE.iter().cycle().take(splits.len()).copied().collect();
    let spec = ChartSpec {
        title: "Samples per class",
        x_name: "class",
        y_name: "samples",
        x: category_ticks(class_names.to_vec(), CLASS_TICK),
        // Room over the highest bar for its count.
        y: value_ticks(0.0..highest as f64 * 1.12, true),
        legend: splits
            .iter()
            .zip(&colors)
            .map(|((name, _), &color)| LegendEntry { label: name.to_string(), swatch: Swatch::Box(color) })
            .collect(),
        y_column: NUMBER_COLUMN,
    };
    // Wide enough for every count over its bar at the smallest size, and for a class name per slot.
    let widest_count = splits.iter().flat_map(|(_, counts)| counts).try_fold(0, |widest, count| {
        Ok::<_, String>(widest.max(text_width(&count.to_string(), BAR_VALUE.smallest)?))
    })?;
    let slot = CLASS_SLOT.max(f64::from(widest_count + 2 * BAR_VALUE_PAD) / bar_width);
    let needed = plot_inset(&spec)? + (slot * class_names.len() as f64).ceil() as i32 + MARGIN;
    let width = needed.max(CLASS_COUNTS_SIZE.0 as i32);
    let mut texts = Vec::new();
    let frame = chart_layout(&spec, Rect::at(0, 0, width, CLASS_COUNTS_SIZE.1 as i32), MIN_PLOT_HEIGHT, &mut texts)?;
    let mut boxes = Vec::new();
    let mut values = Vec::new();
    for (s, ((_, counts), &color)) in splits.iter().zip(&colors).enumerate() {
        for (class, &count) in counts.iter().enumerate() {
            let left = class as f64 - 0.4 + s as f64 * bar_width;
            let corners = [(left, 0.0), (left + bar_width, count as f64)];
            let bar = frame.pixels(corners);
            // The count sits over its bar, as wide as the bar.
            let room = Rect { left: bar.left, top: frame.plot.top, right: bar.right, bottom: bar.top - 2 };
            values.push((count.to_string(), room, BLACK));
            boxes.push((corners, color));
        }
    }
    texts.extend(fit_values(values, BAR_VALUE, Down::Bottom)?);
    let size = (width as u32, frame.bottom as u32);
    Ok(BoxChart { layout: Layout { size, plots: vec![frame.plot], texts }, frame, boxes, grid: Grid::Rows })
}

/// The confusion matrix as a heat map: true classes down the rows, predicted classes across the
/// columns, the count written in every cell. Written as a PNG of [`CONFUSION_CELL`] pixels a cell,
/// with room around for the class names, wrapped where long, and the title, wrapped onto as many
/// lines as it needs.
pub fn confusion_matrix(matrix: &ConfusionMatrix, title: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let plan = plan_confusion_matrix(matrix, title).map_err(|e| plot_error(path, e))?;
    draw_box_chart(&plan, path)
}

/// The layout [`confusion_matrix`] draws.
pub fn confusion_matrix_layout(matrix: &ConfusionMatrix, title: &str) -> Result<Layout> {
    Ok(plan_confusion_matrix(matrix, title).map_err(layout_error)?.layout)
}

fn plan_confusion_matrix(matrix: &ConfusionMatrix, title: &str) -> Planned<BoxChart> {
    let classes = matrix.classes();
    let n = classes.len();
    if n == 0 {
        return Err("the confusion matrix has no class".into());
    }
    register_embedded_font()?;
    let highest = (0..n).flat_map(|t| (0..n).map(move |p| matrix.count(t, p))).max().unwrap_or(0).max(1) as f64;
    // Row t (true class t) is drawn at height n-1-t so that the first class is at the top.
    let row_y = |t: usize| (n - 1 - t) as f64;
    let spec = ChartSpec {
        title,
        x_name: "predicted",
        y_name: "true",
        x: category_ticks(classes.to_vec(), MATRIX_TICK),
        y: category_ticks(classes.iter().rev().cloned().collect(), MATRIX_TICK),
        legend: Vec::new(),
        y_column: CLASS_COLUMN,
    };
    let cells = (n * CONFUSION_CELL as usize) as i32;
    let width = plot_inset(&spec)? + cells + MARGIN;
    let mut texts = Vec::new();
    let frame = chart_layout(&spec, Rect::at(0, 0, width, 0), cells, &mut texts)?;
    let mut boxes = Vec::new();
    let mut values = Vec::new();
    for (t, p) in (0..n).flat_map(|t| (0..n).map(move |p| (t, p))) {
        let count = matrix.count(t, p);
        let shade = count as f64 / highest;
        let (x, y) = (p as f64, row_y(t));
        let corners = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
        let ink = if shade > 0.5 { WHITE } else { BLACK };
        values.push((count.to_string(), frame.pixels(corners).inset(4), ink));
        boxes.push((corners, heat(shade)));
    }
    texts.extend(fit_values(values, CELL_VALUE, Down::Middle)?);
    let size = (width as u32, frame.bottom as u32);
    Ok(BoxChart { layout: Layout { size, plots: vec![frame.plot], texts }, frame, boxes, grid: Grid::None })
}

/// A chart of filled boxes (bars, cells), laid out: the boxes' corners in data coordinates and colours.
struct BoxChart {
    layout: Layout,
    frame: ChartFrame,
    boxes: Vec<([(f64, f64); 2], RGBColor)>,
    grid: Grid,
}

fn draw_box_chart(chart: &BoxChart, path: &Path) -> Result<()> {
    let canvas = paint(&chart.layout, |root| {
        draw_frame(root, &chart.frame, chart.grid)?;
        let plot = root.apply_coord_spec(chart.frame.coord.clone());
        for &(corners, color) in &chart.boxes {
            plot.draw(&Rectangle::new(corners, color.filled()))?;
        }
        Ok(())
    });
    save_png(&canvas.map_err(|e| plot_error(path, e))?, path)
}

/// White (0) to dark blue (1).
fn heat(shade: f64) -> RGBColor {
    let mix = |light: f64, dark: f64| (light + (dark - light) * shade.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

/// What a chart with axes shows, for [`chart_layout`] to lay out.
struct ChartSpec<'a> {
    title: &'a str,
    x_name: &'a str,
    y_name: &'a str,
    x: Ticks,
    y: Ticks,
    legend: Vec<LegendEntry>,
    /// The widest the column of y tick labels may be; longer labels wrap or shrink.
    y_column: i32,
}

/// An axis, where its ticks are and the label of each, and how the labels are set.
struct Ticks {
    axis: RangedCoordf64,
    at: Vec<f64>,
    labels: Vec<String>,
    style: Style,
}

/// One entry of a chart's legend.
struct LegendEntry {
    label: String,
    swatch: Swatch,
}

/// What a legend entry shows before its label: a line as the chart draws it, or a filled box.
#[derive(Clone, Copy)]
enum Swatch {
    Line(ShapeStyle),
    Box(RGBColor),
}

/// Which grid lines a chart draws across its plot.
#[derive(Clone, Copy)]
enum Grid {
    None,
    /// At the y ticks only.
    Rows,
    Both,
}

/// Where a chart's parts go: its plot and the mapping of data onto it, its ticks in pixels, its
/// legend's swatches, and the row below its last text. (Its texts go in the picture's list.)
struct ChartFrame {
    plot: Rect,
    coord: Cartesian2d<RangedCoordf64, RangedCoordf64>,
    x_ticks: Vec<i32>,
    y_ticks: Vec<i32>,
    swatches: Vec<(Rect, Swatch)>,
    bottom: i32,
}

impl ChartFrame {
    /// The pixels between two corners given in data coordinates.
    fn pixels(&self, [a, b]: [(f64, f64); 2]) -> Rect {
        let ((ax, ay), (bx, by)) = (self.coord.translate(&a), self.coord.translate(&b));
        Rect { left: ax.min(bx), top: ay.min(by), right: ax.max(bx), bottom: ay.max(by) }
    }
}

/// Lays `spec` out in `area`: across its width, down from its top, growing past its bottom where the
/// plot would be lower than `plot_height`. Its texts are added to `texts`.
fn chart_layout(spec: &ChartSpec, area: Rect, plot_height: i32, texts: &mut Vec<PlacedText>) -> Planned<ChartFrame> {
    let inner = area.inset(MARGIN);
    let title = set(spec.title, (inner.width(), i32::MAX), TITLE)?;
    let title_room = Rect::at(inner.left, inner.top, inner.width(), title.height());
    texts.push(place(TextKind::Title, spec.title, title, title_room, (Across::Centre, Down::Middle), BLACK));
    let (swatches, legend_bottom) =
        legend_layout(&spec.legend, inner.left, inner.right, title_room.bottom + GAP, texts)?;
    let top = legend_bottom + PLOT_GAP;
    let (left, right) = (area.left + plot_inset(spec)?, inner.right);

    // The x tick labels, each centred under its tick in a room as wide as the ticks are apart.
    let x_ticks: Vec<i32> = spec.x.at.iter().map(|t| spec.x.axis.map(t, (left, right - 1))).collect();
    let x_spacing = spacing(&x_ticks, right - left);
    let x_halves: Vec<i32> =
        x_ticks.iter().map(|&x| (x_spacing / 2).min(x - inner.left).min(inner.right - x)).collect();
    let x_blocks = spec
        .x
        .labels
        .iter()
        .zip(&x_halves)
        .map(|(label, half)| set(label, (2 * half, i32::MAX), spec.x.style))
        .collect::<Planned<Vec<_>>>()?;
    let labels_height = x_blocks.iter().map(Block::height).max().unwrap_or(0);
    let name_height = text_height(1, AXIS_NAME.size);
    let below_plot = TICK_GAP + labels_height + GAP + name_height;
    let plot = Rect { left, top, right, bottom: (inner.bottom - below_plot).max(top + plot_height) };
    let labels_top = plot.bottom + TICK_GAP;
    for (((label, block), &x), half) in spec.x.labels.iter().zip(x_blocks).zip(&x_ticks).zip(x_halves) {
        let room = Rect { left: x - half, top: labels_top, right: x + half, bottom: labels_top + labels_height };
        texts.push(place(TextKind::Tick, label, block, room, (Across::Centre, Down::Top), BLACK));
    }
    let x_name_room = Rect::at(plot.left, labels_top + labels_height + GAP, plot.width(), name_height);
    texts.push(fit(TextKind::AxisName, spec.x_name, x_name_room, AXIS_NAME, (Across::Centre, Down::Middle), BLACK)?);

    // The y tick labels, right against their ticks, each in a room as high as the ticks are apart
    // (and no higher than the space above the plot or below it allows).
    let y_ticks: Vec<i32> = spec.y.at.iter().map(|t| spec.y.axis.map(t, (plot.bottom - 1, plot.top))).collect();
    let y_spacing = spacing(&y_ticks, plot.height());
    let column_right = plot.left - TICK_GAP;
    let column_left = column_right - y_column_width(spec)?;
    for (label, &y) in spec.y.labels.iter().zip(&y_ticks) {
        let half = (y_spacing / 2).min(y - legend_bottom).min(labels_top - y);
        let room = Rect { left: column_left, top: y - half, right: column_right, bottom: y + half };
        texts.push(fit(TextKind::Tick, label, room, spec.y.style, (Across::Right, Down::Middle), BLACK)?);
    }
    let y_name_room = Rect { left: inner.left, top: plot.top, right: inner.left + name_height, bottom: plot.bottom };
    let y_name = set(spec.y_name, (y_name_room.height(), y_name_room.width()), AXIS_NAME)?;
    texts.push(place_turned(TextKind::AxisName, spec.y_name, y_name, y_name_room, BLACK));

    let coord = Cartesian2d::new(
        spec.x.axis.clone(),
        spec.y.axis.clone(),
        (plot.left..plot.right - 1, plot.bottom - 1..plot.top),
    );
    let bottom = x_name_room.bottom + MARGIN;
    Ok(ChartFrame { plot, coord, x_ticks, y_ticks, swatches, bottom })
}

/// The pixels from a chart's area's left edge to its plot: margin, y axis name, tick labels, ticks.
fn plot_inset(spec: &ChartSpec) -> Planned<i32> {
    Ok(MARGIN + text_height(1, AXIS_NAME.size) + GAP + y_column_width(spec)? + TICK_GAP)
}

/// The width of the column of y tick labels: the widest label on one line, up to the spec's limit.
fn y_column_width(spec: &ChartSpec) -> Planned<i32> {
    let widest = spec
        .y
        .labels
        .iter()
        .try_fold(0, |widest, label| Ok::<_, String>(widest.max(text_width(label, spec.y.style.size)?)))?;
    Ok(widest.min(spec.y_column))
}

/// The least distance between neighbouring `ticks` (pixels in order), or `whole` for a single tick.
fn spacing(ticks: &[i32], whole: i32) -> i32 {
    ticks.windows(2).map(|w| (w[1] - w[0]).abs()).min().unwrap_or(whole)
}

/// Lays the legend's entries out in rows centred between `left` and `right`, from `top`, adding
/// their labels to `texts`; returns their swatches and the row the legend ends at (`top` when empty).
fn legend_layout(
    entries: &[LegendEntry],
    left: i32,
    right: i32,
    top: i32,
    texts: &mut Vec<PlacedText>,
) -> Planned<(Vec<(Rect, Swatch)>, i32)> {
    let row_height = text_height(1, LEGEND.size);
    let label_width = right - left - SWATCH.0 - SWATCH_GAP;
    let blocks =
        entries.iter().map(|e| set(&e.label, (label_width, row_height), LEGEND)).collect::<Planned<Vec<_>>>()?;
    let entry_width = |block: &Block| SWATCH.0 + SWATCH_GAP + block.width;
    let row_width = |row: &[(&LegendEntry, Block)]| -> i32 {
        row.iter().map(|(_, block)| entry_width(block) + ENTRY_GAP).sum::<i32>() - ENTRY_GAP
    };
    // As many entries on each row as fit.
    let mut rows: Vec<Vec<(&LegendEntry, Block)>> = Vec::new();
    for (entry, block) in entries.iter().zip(blocks) {
        match rows.last_mut() {
            Some(row) if row_width(row) + ENTRY_GAP + entry_width(&block) <= right - left => row.push((entry, block)),
            _ => rows.push(vec![(entry, block)]),
        }
    }
    let mut swatches = Vec::new();
    let mut bottom = top;
    for (r, row) in rows.into_iter().enumerate() {
        let row_top = top + r as i32 * (row_height + GAP);
        let mut x = left + (right - left - row_width(&row)) / 2;
        for (entry, block) in row {
            swatches.push((Rect::at(x, row_top + (row_height - SWATCH.1) / 2, SWATCH.0, SWATCH.1), entry.swatch));
            let room = Rect::at(x + SWATCH.0 + SWATCH_GAP, row_top, block.width, row_height);
            x = room.right + ENTRY_GAP;
            texts.push(place(TextKind::Legend, &entry.label, block, room, (Across::Left, Down::Middle), BLACK));
        }
        bottom = row_top + row_height;
    }
    Ok((swatches, bottom))
}

/// The axes of `frame`, its tick marks, grid lines and legend swatches.
fn draw_frame(root: &Area, frame: &ChartFrame, grid: Grid) -> DrawResult {
    let plot = frame.plot;
    let (axis_x, axis_y) = (plot.left - 1, plot.bottom);
    let grid_line = BLACK.mix(0.2);
    if matches!(grid, Grid::Both) {
        for &x in &frame.x_ticks {
            root.draw(&PathElement::new([(x, plot.top), (x, plot.bottom - 1)], grid_line))?;
        }
    }
    if matches!(grid, Grid::Rows | Grid::Both) {
        for &y in &frame.y_ticks {
            root.draw(&PathElement::new([(plot.left, y), (plot.right - 1, y)], grid_line))?;
        }
    }
    root.draw(&PathElement::new([(axis_x, plot.top), (axis_x, axis_y), (plot.right - 1, axis_y)], BLACK))?;
    for &x in &frame.x_ticks {
        root.draw(&PathElement::new([(x, axis_y), (x, axis_y + TICK_LENGTH)], BLACK))?;
    }
    for &y in &frame.y_ticks {
        root.draw(&PathElement::new([(axis_x - TICK_LENGTH, y), (axis_x, y)], BLACK))?;
    }
    for &(rect, swatch) in &frame.swatches {
        match swatch {
            Swatch::Line(style) => {
                let y = rect.top + rect.height() / 2;
                root.draw(&PathElement::new([(rect.left, y), (rect.right - 1, y)], style))?;
            }
            Swatch::Box(color) => {
                root.draw(&Rectangle::new([(rect.left, rect.top), (rect.right - 1, rect.bottom - 1)], color.filled()))?
            }
        }
    }
    Ok(())
}

/// Epochs 1..=`last` with half an epoch of room each side, ticks at whole epochs (about 10 at most).
fn epoch_ticks(last: usize) -> Ticks {
    let step = last.div_ceil(10).max(1);
    let epochs: Vec<usize> = (1..=last).step_by(step).collect();
    Ticks {
        axis: (0.5..last as f64 + 0.5).into(),
        at: epochs.iter().map(|&e| e as f64).collect(),
        labels: epochs.iter().map(usize::to_string).collect(),
        style: NUMBER_TICK,
    }
}

/// Ticks over `range` at round values (about 10), labelled with the decimals their step needs;
/// only the whole numbers among them if `whole`.
fn value_ticks(range: Range<f64>, whole: bool) -> Ticks {
    let axis = RangedCoordf64::from(range);
    let mut at = axis.key_points(11);
    if whole {
        at.retain(|t| t.fract() == 0.0);
    }
    let step = at.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let decimals = if step.is_finite() && step < 1.0 { (-step.log10()).ceil() as usize } else { 0 };
    let labels = at.iter().map(|t| format!("{t:.decimals$}")).collect();
    Ticks { axis, at, labels, style: NUMBER_TICK }
}

/// An axis of the categories `labels` centred on 0, 1, ..., n-1, with a tick at each.
fn category_ticks(labels: Vec<String>, style: Style) -> Ticks {
    let n = labels.len();
    Ticks { axis: (-0.5..n as f64 - 0.5).into(), at: (0..n).map(|i| i as f64).collect(), labels, style }
}

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

/// The images in a near-square grid, each scaled to fit [`GRID_IMAGE`] pixels square with its file
/// name and its caption below, the caption in green (right), red (wrong) or black (unknown), under
/// `title` (what the images are, which model predicted them) and a legend. Each tile is
/// `GRID_IMAGE + 2 * GRID_PAD` wide and `GRID_IMAGE + GRID_CAPTION + 2 * GRID_PAD` high, the legend
/// [`GRID_LEGEND`] above them, both higher where their text wraps.
pub fn prediction_grid(items: &[GridItem], title: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let layout = plan_prediction_grid(items, title).map_err(|e| plot_error(path, e))?;
    let mut canvas = paint(&layout, |_| Ok(())).map_err(|e| plot_error(path, e))?;
    for (item, square) in items.iter().zip(&layout.plots) {
        let scale = f64::from(GRID_IMAGE) / f64::from(item.image.width().max(item.image.height()));
        let (w, h) = (
            (f64::from(item.image.width()) * scale).round() as u32,
            (f64::from(item.image.height()) * scale).round() as u32,
        );
        let scaled = imageops::resize(&item.image, w.max(1), h.max(1), FilterType::Triangle);
        let left = i64::from(square.left) + i64::from((GRID_IMAGE - scaled.width()) / 2);
        let top = i64::from(square.top) + i64::from((GRID_IMAGE - scaled.height()) / 2);
        imageops::replace(&mut canvas, &scaled, left, top);
    }
    save_png(&canvas, path)
}

/// The layout [`prediction_grid`] draws; its plots are the squares the images are scaled into.
pub fn prediction_grid_layout(items: &[GridItem], title: &str) -> Result<Layout> {
    plan_prediction_grid(items, title).map_err(layout_error)
}

/// [`prediction_grid`]'s layout, all it needs to draw the grid.
fn plan_prediction_grid(items: &[GridItem], title: &str) -> Planned<Layout> {
    if items.is_empty() {
        return Err("no images for the grid".into());
    }
    if let Some(i) = items.iter().position(|item| item.image.width() == 0 || item.image.height() == 0) {
        return Err(format!("image {i} of the grid is empty"));
    }
    register_embedded_font()?;
    let (image, pad) = (GRID_IMAGE as i32, GRID_PAD as i32);
    let columns = (items.len() as f64).sqrt().ceil() as u32;
    let rows = (items.len() as u32).div_ceil(columns);
    let (columns, rows) = (columns as i32, rows as i32);
    let tile_width = image + 2 * pad;
    let width = columns * tile_width;
    let mut texts = Vec::new();

    // The title, then the key to the caption colours (the true class is the image's folder's name,
    // when that is one of the model's classes).
    let key = "predicted: green right, red wrong, black no true class";
    let title_block = set(title, (width - 2 * pad, i32::MAX), GRID_TITLE)?;
    let title_room = Rect::at(pad, GAP, width - 2 * pad, title_block.height());
    texts.push(place(TextKind::Title, title, title_block, title_room, (Across::Centre, Down::Middle), BLACK));
    let key_block = set(key, (width - 2 * pad, i32::MAX), GRID_KEY)?;
    let key_room = Rect::at(pad, title_room.bottom + 4, width - 2 * pad, key_block.height());
    texts.push(place(TextKind::Legend, key, key_block, key_room, (Across::Centre, Down::Middle), GREY));
    let header = (GRID_LEGEND as i32).max(key_room.bottom + GAP);

    // Every tile's caption strip is as high as the tallest file name and prediction need, with the
    // space left over shared above, between and below them.
    let files = items.iter().map(|item| set(&item.file, (image, i32::MAX), GRID_FILE)).collect::<Planned<Vec<_>>>()?;
    let predictions =
        items.iter().map(|item| set(&item.caption, (image, i32::MAX), GRID_PREDICTION)).collect::<Planned<Vec<_>>>()?;
    let file_height = files.iter().map(Block::height).max().unwrap_or(0);
    let prediction_height = predictions.iter().map(Block::height).max().unwrap_or(0);
    let strip = (GRID_CAPTION as i32).max(file_height + prediction_height + 3 * 4);
    let space = (strip - file_height - prediction_height) / 3;
    let tile_height = image + strip + 2 * pad;
    let mut squares = Vec::new();
    for (i, ((item, file), prediction)) in items.iter().zip(files).zip(predictions).enumerate() {
        let (x, y) = ((i as i32 % columns) * tile_width, header + (i as i32 / columns) * tile_height);
        let square = Rect::at(x + pad, y + pad, image, image);
        let file_room = Rect::at(square.left, square.bottom + space, image, file_height);
        let prediction_room = Rect::at(square.left, file_room.bottom + space, image, prediction_height);
        let color = match item.correct {
            Some(true) => GREEN,
            Some(false) => RED,
            None => BLACK,
        };
        let centred = (Across::Centre, Down::Middle);
        texts.push(place(TextKind::Caption, &item.file, file, file_room, centred, GREY));
        texts.push(place(TextKind::Caption, &item.caption, prediction, prediction_room, centred, color));
        squares.push(square);
    }
    let size = (width as u32, (header + rows * tile_height) as u32);
    Ok(Layout { size, plots: squares, texts })
}

/// `panels` side by side on white (e.g. an image and its heat map), tops aligned, then the colour
/// scale of the heat map (`colours` of 0 at the bottom to 1 at the top, labelled), with
/// `caption` centred under them in black (wrapped, or set smaller, to the card's width if longer).
/// The card is `CARD_PAD` around and between the panels and the scale ([`CARD_SCALE`] wide), plus
/// [`CARD_CAPTION`] below, or more where the caption wraps.
pub fn explanation_card(
    panels: &[RgbImage],
    colours: fn(f32) -> [u8; 3],
    caption: &str,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let plan = plan_explanation_card(panels, caption).map_err(|e| plot_error(path, e))?;
    let mut canvas = paint(&plan.layout, |_| Ok(())).map_err(|e| plot_error(path, e))?;
    for (panel, rect) in panels.iter().zip(&plan.layout.plots) {
        imageops::replace(&mut canvas, panel, i64::from(rect.left), i64::from(rect.top));
    }
    let bar = plan.bar;
    for y in bar.top..bar.bottom {
        let t = (bar.bottom - 1 - y) as f32 / (bar.height() - 1).max(1) as f32;
        for x in bar.left..bar.right {
            canvas.put_pixel(x as u32, y as u32, Rgb(colours(t)));
        }
    }
    save_png(&canvas, path)
}

/// The layout [`explanation_card`] draws; its plots are the panels, then the colour bar.
pub fn explanation_card_layout(panels: &[RgbImage], caption: &str) -> Result<Layout> {
    Ok(plan_explanation_card(panels, caption).map_err(layout_error)?.layout)
}

/// [`explanation_card`]'s layout and where its colour bar goes.
struct CardPlan {
    layout: Layout,
    bar: Rect,
}

fn plan_explanation_card(panels: &[RgbImage], caption: &str) -> Planned<CardPlan> {
    if panels.is_empty() || panels.iter().any(|p| p.width() == 0 || p.height() == 0) {
        return Err("an explanation card needs at least one non-empty image".into());
    }
    register_embedded_font()?;
    let pad = CARD_PAD as i32;
    let panels_height = panels.iter().map(RgbImage::height).max().unwrap_or(0).max(CARD_SCALE_HEIGHT) as i32;
    let mut plots = Vec::new();
    let mut left = pad;
    for panel in panels {
        plots.push(Rect::at(left, pad, panel.width() as i32, panel.height() as i32));
        left += panel.width() as i32 + pad;
    }
    let width = left + CARD_SCALE as i32;
    // The bar spans the panels' height less room for its end labels above and below it.
    let end_room = 16;
    let bar =
        Rect { left, top: pad + end_room, right: left + CARD_SCALE_BAR as i32, bottom: pad + panels_height - end_room };
    plots.push(bar);
    let words = Rect { left: bar.right + 4, top: bar.top, right: width - 2, bottom: bar.bottom };
    let mut texts = Vec::new();
    let scale_labels = [
        ("1", Rect { top: pad, bottom: bar.top, ..bar }, SCALE_END, Across::Centre),
        ("0", Rect { top: bar.bottom, bottom: bar.bottom + end_room, ..bar }, SCALE_END, Across::Centre),
        ("high", Rect { bottom: words.top + end_room, ..words }, SCALE_WORD, Across::Left),
        ("low", Rect { top: words.bottom - end_room, ..words }, SCALE_WORD, Across::Left),
    ];
    for (label, room, style, across) in scale_labels {
        texts.push(fit(TextKind::Tick, label, room, style, (across, Down::Middle), BLACK)?);
    }
    let block = set(caption, (width - 2 * pad, i32::MAX), CARD_TEXT)?;
    let strip = (CARD_CAPTION as i32).max(block.height() + 2 * GAP);
    let room = Rect::at(pad, pad + panels_height, width - 2 * pad, strip);
    texts.push(place(TextKind::Caption, caption, block, room, (Across::Centre, Down::Middle), BLACK));
    let size = (width as u32, room.bottom as u32);
    Ok(CardPlan { layout: Layout { size, plots, texts }, bar })
}

/// Height of `lines` lines at font `size`, each as high as the size (ascender to descender) and
/// [`LINE_STEP`] apart, plus [`INK_SLACK`].
fn text_height(lines: usize, size: f64) -> i32 {
    if lines == 0 {
        return 0;
    }
    (size * (1.0 + LINE_STEP * (lines - 1) as f64)).ceil() as i32 + INK_SLACK
}

/// Width in pixels of `text` at font `size` in the embedded font: plotters' estimate (the sum of the
/// glyphs' advances, rounded down), plus [`INK_SLACK`] and a pixel for the rounding.
fn text_width(text: &str, size: f64) -> Planned<i32> {
    if text.is_empty() {
        return Ok(0);
    }
    let (width, _) = FontDesc::from((FONT, size)).box_size(text).map_err(|e| format!("measuring text: {e}"))?;
    Ok(width as i32 + 1 + INK_SLACK)
}

/// `text` set within `width` by `height` pixels: on as few lines as fit at the largest size the
/// style allows, breaking inside words only where breaking between them is not enough, and cut
/// short with "…" only where even the smallest size needs more lines than fit.
fn set(text: &str, (width, height): (i32, i32), style: Style) -> Planned<Block> {
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
fn fit(
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
fn fit_values(values: Vec<(String, Rect, RGBColor)>, style: Style, down: Down) -> Planned<Vec<PlacedText>> {
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
fn place(
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
fn place_turned(kind: TextKind, text: &str, block: Block, room: Rect, color: RGBColor) -> PlacedText {
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
fn paint(layout: &Layout, draw: impl FnOnce(&Area) -> DrawResult) -> std::result::Result<RgbImage, Box<dyn StdError>> {
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

fn layout_error(reason: String) -> Error {
    Error::Invalid(format!("laying out a plot: {reason}"))
}
