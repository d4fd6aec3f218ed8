//! Data: image folders as datasets (loading, cleaning, splits, augmentation, batches) and a
//! generator of synthetic face images for machines with no data.

pub mod folder;
pub mod image;
pub mod split;
