//! Data: image folders as datasets (loading, cleaning, splits, augmentation, batches) and a
//! generator of synthetic face images for machines with no data.

pub mod augment;
pub mod folder;
pub mod image;
pub mod loader;
pub mod split;
pub mod synth;
