//! Charts with axes: what one shows ([`ChartSpec`]), its layout (title, legend, ticks, axis
//! names around the plot) and its frame drawn; charts of filled boxes drawn whole.

use std::ops::Range;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::text::{
    AXIS_NAME, Across, Area, Block, Down, DrawResult, LEGEND, Layout, NUMBER_TICK, PlacedText, Planned, Rect, Style,
    TITLE, TextKind, fit, paint, place, place_turned, plot_error, save_png, set, text_height, text_width,
};
use crate::Result;

/// Space around a chart, and between its title, legend and axis names.
pub(super) const MARGIN: i32 = 12;
pub(super) const GAP: i32 = 6;
/// Space between the legend (or title) and the top of the plot, where the top tick's label sits.
const PLOT_GAP: i32 = 12;
/// Length of a tick mark, and the distance from the plot to its label.
const TICK_LENGTH: i32 = 5;
const TICK_GAP: i32 = 8;
/// Legend swatches: their size, the space to their label, and the space between entries.
const SWATCH: (i32, i32) = (20, 12);
const SWATCH_GAP: i32 = 6;
const ENTRY_GAP: i32 = 18;

/// A chart of filled boxes (bars, cells), laid out: the boxes' corners in data coordinates and colours.
pub(super) struct BoxChart {
    pub(super) layout: Layout,
    pub(super) frame: ChartFrame,
    pub(super) boxes: Vec<([(f64, f64); 2], RGBColor)>,
    pub(super) grid: Grid,
}

pub(super) fn draw_box_chart(chart: &BoxChart, path: &Path) -> Result<()> {
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

/// What a chart with axes shows, for [`chart_layout`] to lay out.
pub(super) struct ChartSpec<'a> {
    pub(super) title: &'a str,
    pub(super) x_name: &'a str,
    pub(super) y_name: &'a str,
    pub(super) x: Ticks,
    pub(super) y: Ticks,
    pub(super) legend: Vec<LegendEntry>,
    /// The widest the column of y tick labels may be; longer labels wrap or shrink.
    pub(super) y_column: i32,
}

/// An axis, where its ticks are and the label of each, and how the labels are set.
pub(super) struct Ticks {
    axis: RangedCoordf64,
    at: Vec<f64>,
    labels: Vec<String>,
    style: Style,
}

/// One entry of a chart's legend.
pub(super) struct LegendEntry {
    pub(super) label: String,
    pub(super) swatch: Swatch,
}

/// What a legend entry shows before its label: a line as the chart draws it, or a filled box.
#[derive(Clone, Copy)]
pub(super) enum Swatch {
    Line(ShapeStyle),
    Box(RGBColor),
}

/// Which grid lines a chart draws across its plot.
#[derive(Clone, Copy)]
pub(super) enum Grid {
    None,
    /// At the y ticks only.
    Rows,
    Both,
}

/// Where a chart's parts go: its plot and the mapping of data onto it, its ticks in pixels, its
/// legend's swatches, and the row below its last text. (Its texts go in the picture's list.)
pub(super) struct ChartFrame {
    pub(super) plot: Rect,
    pub(super) coord: Cartesian2d<RangedCoordf64, RangedCoordf64>,
    x_ticks: Vec<i32>,
    y_ticks: Vec<i32>,
    swatches: Vec<(Rect, Swatch)>,
    pub(super) bottom: i32,
}

impl ChartFrame {
    /// The pixels between two corners given in data coordinates.
    pub(super) fn pixels(&self, [a, b]: [(f64, f64); 2]) -> Rect {
        let ((ax, ay), (bx, by)) = (self.coord.translate(&a), self.coord.translate(&b));
        Rect { left: ax.min(bx), top: ay.min(by), right: ax.max(bx), bottom: ay.max(by) }
    }
}

/// Lays `spec` out in `area`: across its width, down from its top, growing past its bottom where the
/// plot would be lower than `plot_height`. Its texts are added to `texts`.
pub(super) fn chart_layout(
    spec: &ChartSpec,
    area: Rect,
    plot_height: i32,
    texts: &mut Vec<PlacedText>,
) -> Planned<ChartFrame> {
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
pub(super) fn plot_inset(spec: &ChartSpec) -> Planned<i32> {
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
pub(super) fn draw_frame(root: &Area, frame: &ChartFrame, grid: Grid) -> DrawResult {
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
pub(super) fn epoch_ticks(last: usize) -> Ticks {
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
pub(super) fn value_ticks(range: Range<f64>, whole: bool) -> Ticks {
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
pub(super) fn category_ticks(labels: Vec<String>, style: Style) -> Ticks {
    let n = labels.len();
    Ticks { axis: (-0.5..n as f64 - 0.5).into(), at: (0..n).map(|i| i as f64).collect(), labels, style }
}
