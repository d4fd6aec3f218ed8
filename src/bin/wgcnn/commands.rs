//! The commands, one module each (predict and explain share `images`), and [`run`], which runs
//! the one parsed.

mod bench;
mod eval;
mod explain;
mod images;
mod info;
mod predict;
mod serve;
mod synth;
mod train;

use wgcnn::data::image::DecodeLimits;
use wgcnn::data::synth::FacePairing;
use wgcnn::gpu::DeviceChoice;
use wgcnn::native::CpuKernels;

use crate::cli::Command;
use crate::errors::Usage;
use bench::bench_train;
use eval::{EvalData, eval};
use explain::explain;
use info::info;
use predict::predict;
use serve::serve;
use synth::synth;
use train::train;

/// Runs the parsed `command`; `given` says which flags the user typed (by clap id).
pub fn run(
    command: Command,
    device: &DeviceChoice,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    // An unusable kernel set or convolution algorithm is reported before any work, not quietly replaced.
    CpuKernels::from_env()?;
    wgcnn::native::conv2d::ConvAlgorithm::from_env()?;
    match command {
        Command::Info => info(device),
        Command::BenchTrain { preset, batch_size, steps, warmup, size, profile } => {
            bench_train(device, &preset, batch_size, steps, warmup, size, profile)
        }
        Command::Synth { out, per_class, classes, size, seed, paired } => {
            let pairing = if paired { FacePairing::Paired } else { FacePairing::Independent };
            synth(&out, per_class, &classes, size, seed, pairing)
        }
        Command::Train(args) => train(device, &args, limits, given),
        Command::Eval { model, data, split, tta, json, out } => {
            let data = match (data, split) {
                (Some(dir), _) => EvalData::Folder(dir),
                (None, Some(part)) => EvalData::RunSplit(part),
                (None, None) => return Err(Usage("eval needs DATA or --split".into()).into()),
            };
            eval(device, limits, &model, &data, &tta, json, out.as_deref())
        }
        Command::Predict { model, images, json, grid, tta } => {
            predict(device, limits, &model, &images, &tta, json, grid.as_deref())
        }
        Command::Serve(args) => serve(device, &args, limits),
        Command::Explain { model, images, method, class, out } => {
            explain(device, limits, &model, &images, method, class.as_deref(), &out)
        }
    }
}
