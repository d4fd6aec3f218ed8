//! `wgcnn train`'s arguments.

use std::path::PathBuf;

use wgcnn::data::augment::Augment;
use wgcnn::data::image::Fit;
use wgcnn::data::split::SplitRatios;
use wgcnn::model::test_time::TestTimeAugment;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// A folder of class subfolders (class names from the sorted folder names).
    #[arg(required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Run folder to write (created if missing); it holds a checkpoint after every epoch.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its checkpoint, with the settings it began with
    /// (a setting given again must be the same, except --epochs, which may extend the run).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "overwrite")]
    pub resume: Option<PathBuf>,
    /// Start from this model's weights (fine-tuning) with a fresh optimizer; the model must have
    /// the run's architecture and input.
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
    /// A reference model: happy-sad (Model A, 3x256x256; the default), emotions3 (Model B,
    /// 3x128x128) or fer48 (FER-2013's 1x48x48 faces: a VGG-style model with batch norm and its
    /// training settings, as the README measures them).
    #[arg(long, conflicts_with = "arch")]
    pub preset: Option<String>,
    /// An architecture spec instead of a preset, e.g. c16-p-c32-p-f-d64-d1 (see the README); its
    /// input is --size (required) and --grayscale.
    #[arg(long)]
    pub arch: Option<String>,
    /// Input size in pixels (square); default: the preset's (256 or 128); required with --arch.
    #[arg(long)]
    pub size: Option<usize>,
    /// One grayscale channel instead of RGB.
    #[arg(long)]
    pub grayscale: bool,
    /// How images of another aspect ratio reach the input: stretch, crop or pad.
    #[arg(long, default_value = "stretch")]
    pub fit: Fit,
    /// The most epochs (early stopping may end sooner); default: the preset's (20; fer48: 50).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub epochs: Option<usize>,
    /// Images per step (default: the preset's, 32; fer48: 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's starting learning rate; default: the preset's (0.001).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Train, validation and test shares; default: the preset's (0.7,0.2,0.1; fer48: 0.85,0.1,0.05).
    #[arg(long)]
    pub split: Option<SplitRatios>,
    /// Training-split augmentation: off, moderate, or a list such as flip,rotate=10,shift=0.1,zoom=0.1,brightness=0.1,contrast=0.1;
    /// default: the preset's (off; fer48: flip,rotate=10,shift=0.1,zoom=0.1).
    #[arg(long)]
    pub augment: Option<Augment>,
    /// Early stopping: epochs without a lower validation loss before stopping (the best epoch's
    /// weights are restored); 0 turns it off. Default: the preset's (5; fer48: 10).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Learning rate times --lr-factor after this many epochs without a lower validation loss; 0
    /// turns it off. Default: the preset's (3; fer48: 5).
    #[arg(long)]
    pub lr_patience: Option<usize>,
    /// What a plateau multiplies the learning rate by; default: the preset's (0.5).
    #[arg(long)]
    pub lr_factor: Option<f64>,
    /// The learning rate a plateau lowers it to at the least; default: the preset's (1e-6).
    #[arg(long)]
    pub min_lr: Option<f64>,
    /// Weigh each class's loss by the inverse of its share (for imbalanced data; fer48 does).
    #[arg(long)]
    pub balance_classes: bool,
    /// Test-time augmentation the model file tells eval, predict and serve to use, and the test
    /// evaluations after training: none, or mirror (each image's probabilities averaged with its
    /// left-right mirror's). Default: the preset's (none; fer48: mirror).
    #[arg(long, value_parser = |s: &str| s.parse::<TestTimeAugment>())]
    pub tta: Option<TestTimeAugment>,
    /// A second folder of the same classes to evaluate on after training (e.g. an official test set).
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    /// Seeds the weights, the split, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace the model or checkpoint of a run folder that already holds one.
    #[arg(long)]
    pub overwrite: bool,
}
