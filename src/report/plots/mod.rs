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

mod axes;
mod charts;
mod images;
mod text;

pub use charts::{
    CLASS_COUNTS_SIZE, CONFUSION_CELL, TRAINING_CURVES_SIZE, class_counts, class_counts_layout, confusion_matrix,
    confusion_matrix_layout, training_curves, training_curves_layout,
};
pub use images::{
    CARD_CAPTION, CARD_PAD, CARD_SCALE, GRID_CAPTION, GRID_IMAGE, GRID_LEGEND, GRID_PAD, GridItem, explanation_card,
    explanation_card_layout, prediction_grid, prediction_grid_layout,
};
pub use text::{Layout, PlacedText, Rect, TextKind};
