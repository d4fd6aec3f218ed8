//! The charts of a run: training curves, class counts per split, the confusion matrix.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::axes::{
    BoxChart, ChartFrame, ChartSpec, Grid, LegendEntry, MARGIN, Swatch, category_ticks, chart_layout, draw_box_chart,
    draw_frame, epoch_ticks, plot_inset, value_ticks,
};
use super::text::{
    BAR_VALUE, CELL_VALUE, CLASS_TICK, Down, Layout, MATRIX_TICK, Planned, Rect, fit_values, layout_error, paint,
    plot_error, register_embedded_font, save_png, text_width,
};
use crate::Result;
use crate::model::history::{EpochRecord, History};
use crate::report::metrics::ConfusionMatrix;

/// Size in pixels of [`training_curves`]' image.
pub const TRAINING_CURVES_SIZE: (u32, u32) = (1200, 500);
/// Least size in pixels of [`class_counts`]' image: it is wider where the classes and splits need
/// more room for their counts, taller where long class names wrap onto many lines.
pub const CLASS_COUNTS_SIZE: (u32, u32) = (1000, 500);
/// Side in pixels of each cell of [`confusion_matrix`]; the image is as large as the cells, the
/// class names and the title need.
pub const CONFUSION_CELL: u32 = 90;

/// The least height of a chart's plot.
const MIN_PLOT_HEIGHT: i32 = 200;
/// The widest column of number labels, and of class names beside the confusion matrix.
const NUMBER_COLUMN: i32 = 120;
const CLASS_COLUMN: i32 = 200;
/// The least width of a class on [`class_counts`]' axis.
const CLASS_SLOT: f64 = 64.0;
/// Space on each side of a count over its bar.
const BAR_VALUE_PAD: i32 = 2;

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Split colours of [`class_counts`], in turn (matplotlib's first colours).
const PALETTE: [RGBColor; 6] =
    [BLUE, ORANGE, RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

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

/// White (0) to dark blue (1).
fn heat(shade: f64) -> RGBColor {
    let mix = |light: f64, dark: f64| (light + (dark - light) * shade.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}
