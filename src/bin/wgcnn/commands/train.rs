//! `wgcnn train`: a training run with progress, stopped by a signal with a checkpoint, or resumed
//! from one.

use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::workflow;
use wgcnn::workflow::train::{Checkpoint, RunEvent};

use crate::cli::TrainArgs;
use crate::device::chosen_backend;
use crate::presets::{resumed_settings, settings_from_args};
use crate::progress;
use crate::signals::{Interrupted, StopSignals};

pub fn train(
    choice: &DeviceChoice,
    args: &TrainArgs,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let (settings, checkpoint) = match &args.resume {
        None => (settings_from_args(args, limits, None)?, None),
        Some(run_dir) => {
            let checkpoint = Checkpoint::load(run_dir)?;
            (resumed_settings(&checkpoint, args, limits, given)?, Some(checkpoint))
        }
    };
    if let Some(checkpoint) = &checkpoint {
        println!(
            "resuming {} after {} of {} epochs",
            settings.out_dir.display(),
            checkpoint.epochs_done(),
            settings.epochs
        );
    }
    let mut progress = progress::TrainProgress::new();
    let (backend, why) = chosen_backend(choice)?;
    if let Some(why) = why {
        println!("device auto: {} ({why})", backend.describe());
    }
    let signals = StopSignals::new();
    let mut installed = Ok(());
    let run = workflow::train::train_from(&backend, &settings, checkpoint, &signals.stop, &mut |event| {
        // Until training begins, a signal ends the command at once, as for any other command.
        if let RunEvent::Model { .. } = event {
            installed = signals.install();
        }
        progress.show_run(event)
    });
    installed?;
    let run = match run {
        Err(wgcnn::Error::Interrupted { checkpoint, epoch, step }) => {
            let line = format!(
                "training interrupted after step {step} of epoch {epoch}; {} holds that moment. Resume with: wgcnn train --resume {}",
                checkpoint.display(),
                settings.out_dir.display()
            );
            return Err(Interrupted { code: signals.exit_code(), line }.into());
        }
        run => run?,
    };
    println!(
        "
run folder: {}",
        settings.out_dir.display()
    );
    if let Some(test) = &run.test {
        println!("test-split accuracy: {:.4}", test.report.accuracy);
    }
    if let Some(test) = &run.test_dir {
        println!("test-folder accuracy: {:.4}", test.report.accuracy);
    }
    Ok(())
}
