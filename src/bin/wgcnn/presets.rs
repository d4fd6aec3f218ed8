//! The settings of a training run: a preset's, with the train flags given over them; resuming,
//! the checkpoint's, checked against the flags given.

use std::path::PathBuf;

use wgcnn::data::image::DecodeLimits;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::train::{Checkpoint, TrainSettings};

use crate::cli::TrainArgs;
use crate::errors::{Usage, typed};

/// The settings the train flags give, the data and run folders as given (or `fallback`'s, when
/// resuming without them).
pub fn settings_from_args(
    args: &TrainArgs,
    limits: DecodeLimits,
    fallback: Option<&TrainSettings>,
) -> anyhow::Result<TrainSettings> {
    let preset = typed(Preset::named(args.preset.as_deref().unwrap_or(Preset::DEFAULT)))?;
    // Resuming, what no flag names is the run's own: its architecture, channels and batch size.
    let run_default = fallback.filter(|_| args.preset.is_none());
    let channels = match (args.grayscale, run_default) {
        (true, _) => 1,
        (false, Some(run)) => run.architecture.input.channels,
        (false, None) if args.arch.is_none() => preset.architecture.input.channels,
        (false, None) => 3,
    };
    let architecture = match (&args.arch, args.size) {
        (Some(_), None) => {
            return Err(Usage(
                "--arch needs --size: the input size of an architecture spec is not known \
                              (e.g. --arch c16-p-f-d1 --size 64; add --grayscale for one channel)"
                    .into(),
            )
            .into());
        }
        (Some(spec), Some(size)) => typed(Architecture::parse(spec, InputShape::new(channels, size, size)))?,
        (None, size) => {
            let base = run_default.map_or(&preset.architecture, |run| &run.architecture).clone();
            let size = size.unwrap_or(base.input.height);
            base.with_input(InputShape::new(channels, size, size))
        }
    };
    // An architecture too deep for --size is the user's to change, before any work.
    typed(architecture.layers_info())?;
    let given_or_fallback = |given: &Option<PathBuf>, fallback: Option<&PathBuf>| {
        given.clone().or_else(|| fallback.cloned()).expect("clap requires it unless resuming")
    };
    Ok(TrainSettings {
        data_dir: given_or_fallback(&args.data, fallback.map(|f| &f.data_dir)),
        test_dir: args.test_data.clone(),
        architecture,
        fit: args.fit,
        split: args.split.unwrap_or(preset.training.split),
        epochs: args.epochs.unwrap_or(preset.training.epochs),
        batch_size: args.batch_size.unwrap_or(run_default.map_or(preset.batch_size, |run| run.batch_size)),
        lr: args.lr,
        seed: args.seed,
        patience: Some(args.patience.unwrap_or(preset.training.patience)).filter(|&p| p > 0),
        lr_patience: Some(args.lr_patience.unwrap_or(preset.training.lr_patience)).filter(|&p| p > 0),
        lr_factor: args.lr_factor,
        min_lr: args.min_lr,
        augment: args.augment.unwrap_or(preset.training.augment),
        balance_classes: args.balance_classes || preset.training.balance_classes,
        test_time_augment: args.tta.unwrap_or(preset.training.test_time_augment),
        out_dir: given_or_fallback(&args.out, fallback.map(|f| &f.out_dir)),
        overwrite: args.overwrite,
        limits,
        init: args.init.clone(),
    })
}

/// The settings of the run `args.resume` names: its checkpoint's, with --epochs if given. Any
/// other setting given must be the checkpoint's; `given` says which flags the user typed (by
/// clap id).
pub fn resumed_settings(
    checkpoint: &Checkpoint,
    args: &TrainArgs,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<TrainSettings> {
    let stored = checkpoint.settings();
    let typed_now = settings_from_args(args, limits, Some(&stored))?.with_absolute_paths()?;
    // The clap ids behind each setting's flag.
    let ids_of = |flag: &str| -> Vec<String> {
        match flag {
            "DATA" => vec!["data".into()],
            "--arch" => ["preset", "arch", "size", "grayscale"].map(String::from).to_vec(),
            "--batch-size" => ["batch_size", "preset"].map(String::from).to_vec(),
            flag => vec![flag.trim_start_matches("--").replace('-', "_")],
        }
    };
    for (flag, now, then) in typed_now.differences(&stored) {
        if ids_of(flag).iter().any(|id| given(id)) {
            return Err(Usage(format!(
                "{flag} gives {now}, but the run in {} began with {then}: a resumed run keeps its settings \
                 (only --epochs may change); leave {flag} out",
                stored.out_dir.display()
            ))
            .into());
        }
    }
    Ok(TrainSettings { epochs: args.epochs.unwrap_or(stored.epochs), ..stored })
}
