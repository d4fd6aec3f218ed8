//! wgcnn: a convolutional-network engine whose GPU kernels are hand-written WGSL run through wgpu,
//! with a native CPU backend and a plain CPU reference of every kernel that the tests hold them
//! to; and the facial-emotion classifier built on it (the `wgcnn` command, the web app).
//!
//! # Train, predict, save
//!
//! A preset gives every training setting; change the ones you need, train into a run folder
//! (which receives the model, its checkpoint, plots and the test evaluation), then open the
//! saved model to predict image files:
//!
//! ```
//! use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};
//! use wgcnn::model::backend::Backend;
//! use wgcnn::model::spec::{Architecture, InputShape};
//! use wgcnn::workflow::preset::Preset;
//! use wgcnn::workflow::session::ModelSession;
//! use wgcnn::workflow::train::{TrainSettings, train};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let (faces, run) = (tmp.path().join("faces"), tmp.path().join("run"));
//! // A small dataset: folders happy/ and sad/ of 24 synthetic faces each, 24x24 pixels.
//! let images = write_dataset(&faces, &[Emotion::Happy, Emotion::Sad], 24, 24, 0, FacePairing::Paired)?;
//!
//! // The happy-sad preset's settings (split, Adam, early stopping...), a small model, 3 epochs.
//! let settings = TrainSettings {
//!     architecture: Architecture::parse("c8-p-c8-p-f-d16-d1", InputShape::new(3, 24, 24))?,
//!     epochs: 3,
//!     ..Preset::named("happy-sad")?.settings(&faces, &run)
//! };
//! // The CPU reference: plain loops, no GPU needed (`Backend::new` opens the one you choose).
//! let backend = Backend::Reference;
//! // Each step is told as a `RunEvent` (the data loaded, every epoch, the evaluation): here unshown.
//! let trained = train(&backend, &settings, &mut |_event| {})?;
//! assert_eq!(trained.model_path, run.join("model.safetensors"));
//!
//! // The saved model, loaded again, predicting an image file.
//! let mut session = ModelSession::open(&trained.model_path, &backend, &[1], Default::default())?;
//! let file = std::fs::read(&images[0])?;
//! let prediction = session.predict_bytes(&[&file])?.remove(0)?;
//! println!("{}: {} ({:.0}%)", images[0].display(), prediction.label, 100.0 * prediction.confidence);
//! assert!(session.class_names().contains(&prediction.label));
//! # Ok(())
//! # }
//! ```
//!
//! # Modules, from the user's work down to the kernels
//!
//! - [`workflow`]: the jobs: [`workflow::preset`] (the built-in models and their settings),
//!   [`workflow::train`] (a run folder), [`workflow::evaluate`], [`workflow::session`] (predict
//!   and explain with a saved model);
//! - [`serve`]: the web app over one saved model;
//! - [`data`]: image folders as datasets (loading, splits, augmentation, batches) and synthetic
//!   faces; [`report`]: metrics, predictions and plots;
//! - [`train`]: the training loop and its callbacks (early stopping, learning-rate plateau);
//! - [`model`]: architectures as spec strings ([`model::spec`]), the model file
//!   ([`model::file`]), and models on each backend ([`model::backend`]);
//! - [`gpu`] (WGSL kernels on wgpu), [`native`] (the fast CPU ops) and [`mod@reference`] (plain
//!   loops): the three backends, each its ops and the model that runs them
//!   ([`gpu::GpuModel`], [`native::NativeModel`], [`reference::ReferenceModel`]), their ops
//!   sharing only the op contract in [`shape`];
//! - [`files`]: reading user-named files within bounds, writing files whole; [`enum@Error`]: the
//!   library's errors.

pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod model;
pub mod native;
pub mod reference;
pub mod report;
pub mod serve;
pub mod shape;
pub mod train;
pub mod workflow;

pub use error::{Error, Result};
