//! The plots made of images: a grid of predicted images, and an explained image's card.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use super::axes::GAP;
use super::text::{
    Across, Block, CARD_TEXT, Down, GRID_FILE, GRID_KEY, GRID_PREDICTION, GRID_TITLE, Layout, Planned, Rect, SCALE_END,
    SCALE_WORD, TextKind, fit, layout_error, paint, place, plot_error, register_embedded_font, save_png, set,
};
use crate::Result;

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

const GREEN: RGBColor = RGBColor(0, 128, 0);
const RED: RGBColor = RGBColor(200, 0, 0);
const GREY: RGBColor = RGBColor(90, 90, 90);

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
