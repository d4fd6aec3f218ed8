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
    let data = given_or_fallback(&args.data, fallback.map(|f| &f.data_dir));
    let out = given_or_fallback(&args.out, fallback.map(|f| &f.out_dir));
    let defaults = preset.settings(data, out);
    let patience = |given: Option<usize>| given.map(|p| Some(p).filter(|&p| p > 0));
    Ok(TrainSettings {
        test_dir: args.test_data.clone(),
        architecture,
        fit: args.fit,
        split: args.split.unwrap_or(defaults.split),
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.or(run_default.map(|run| run.batch_size)).unwrap_or(defaults.batch_size),
        lr: args.lr.unwrap_or(defaults.lr),
        seed: args.seed,
        patience: patience(args.patience).unwrap_or(defaults.patience),
        lr_patience: patience(args.lr_patience).unwrap_or(defaults.lr_patience),
        lr_factor: args.lr_factor.unwrap_or(defaults.lr_factor),
        min_lr: args.min_lr.unwrap_or(defaults.min_lr),
        augment: args.augment.unwrap_or(defaults.augment),
        balance_classes: args.balance_classes || defaults.balance_classes,
        test_time_augment: args.tta.unwrap_or(defaults.test_time_augment),
        overwrite: args.overwrite,
        limits,
        init: args.init.clone(),
        ..defaults
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
    for difference in typed_now.differences(&stored) {
        // A setting no flag sets cannot be given (the test below names a flag for each).
        let Some((flag, ids)) = setting_flag(&difference.field) else { continue };
        // Only --epochs may change.
        if flag != "--epochs" && ids.iter().any(|id| given(id)) {
            let (now, then) = (&difference.now, &difference.then);
            let (now, then) = match difference.field.split_once('.') {
                // A flag that sets several values (the limits have one flag each): say which differs.
                Some((top, part)) if top != "limits" => (format!("{part} {now}"), format!("{part} {then}")),
                _ => (now.clone(), then.clone()),
            };
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

/// The train flag that sets a [`TrainSettings`] field (or a value inside one, `limits.max_pixels`),
/// and the clap ids of the flags that change it; None for a field no flag sets.
pub fn setting_flag(field: &str) -> Option<(&'static str, &'static [&'static str])> {
    let flag: (&'static str, &'static [&'static str]) = match field.split('.').next()? {
        "data_dir" => ("DATA", &["data"]),
        "test_dir" => ("--test-data", &["test_data"]),
        "architecture" => ("--arch", &["preset", "arch", "size", "grayscale"]),
        "fit" => ("--fit", &["fit"]),
        "split" => ("--split", &["split"]),
        "epochs" => ("--epochs", &["epochs"]),
        "batch_size" => ("--batch-size", &["batch_size", "preset"]),
        "lr" => ("--lr", &["lr"]),
        "seed" => ("--seed", &["seed"]),
        "patience" => ("--patience", &["patience"]),
        "lr_patience" => ("--lr-patience", &["lr_patience"]),
        "lr_factor" => ("--lr-factor", &["lr_factor"]),
        "min_lr" => ("--min-lr", &["min_lr"]),
        "augment" => ("--augment", &["augment"]),
        "balance_classes" => ("--balance-classes", &["balance_classes"]),
        "test_time_augment" => ("--tta", &["tta"]),
        "init" => ("--init", &["init"]),
        "limits" => match field {
            "limits.max_pixels" => ("--max-image-pixels", &["max_image_pixels"]),
            "limits.max_side" => ("--max-image-side", &["max_image_side"]),
            "limits.max_pixel_bytes" => ("--max-image-mb", &["max_image_mb"]),
            "limits.max_file_bytes" => ("--max-file-mb", &["max_file_mb"]),
            _ => return None,
        },
        _ => return None,
    };
    Some(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new setting fails here until a flag is named for it, so that resuming checks it.
    #[test]
    fn every_stored_setting_has_a_flag() {
        let settings = Preset::named(Preset::DEFAULT).unwrap().settings("data", "run");
        for (field, _) in settings.stored_values() {
            assert!(setting_flag(&field).is_some(), "no flag for the setting {field}");
        }
    }
}
