//! `wgcnn serve`: the web app, on the options its flags give.

use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::serve::ServeOptions;

use crate::cli::ServeArgs;
use crate::device::{because, chosen_backend};

pub fn serve(choice: &DeviceChoice, args: &ServeArgs, limits: DecodeLimits) -> anyhow::Result<()> {
    use wgcnn::serve::{Server, batcher::BatchOptions};
    anyhow::ensure!(args.max_upload_mb > 0.0, "--max-upload-mb must be more than 0");
    anyhow::ensure!(
        args.upload_budget_mb >= args.max_upload_mb,
        "--upload-budget-mb ({}) must hold at least one upload of --max-upload-mb ({})",
        args.upload_budget_mb,
        args.max_upload_mb
    );
    anyhow::ensure!(args.max_wait_ms >= 0.0, "--max-wait-ms must not be negative");
    anyhow::ensure!(args.body_timeout_s > 0.0, "--body-timeout-s must be more than 0");
    anyhow::ensure!(args.idle_timeout_s > 0.0, "--idle-timeout-s must be more than 0");
    anyhow::ensure!(args.max_connections > 0, "--max-connections must be at least 1");
    let batch = BatchOptions {
        max_batch: args.max_batch,
        max_wait: std::time::Duration::from_secs_f64(args.max_wait_ms / 1e3),
        ..BatchOptions::default()
    };
    let max_upload_bytes = (args.max_upload_mb * (1 << 20) as f64) as usize;
    let defaults = ServeOptions::default();
    let options = ServeOptions {
        addr: args.addr,
        max_upload_bytes,
        batch,
        limits,
        decode_threads: args.decode_threads.unwrap_or(defaults.decode_threads),
        upload_budget_bytes: (args.upload_budget_mb * (1 << 20) as f64) as usize,
        body_timeout: std::time::Duration::from_secs_f64(args.body_timeout_s),
        max_connections: args.max_connections,
        idle_timeout: std::time::Duration::from_secs_f64(args.idle_timeout_s),
        stop_on_signals: true,
        test_time_augment: args.tta.chosen,
    };
    let (backend, why) = chosen_backend(choice)?;
    println!("adapter: {}{}", backend.describe(), because(&why));
    let server = Server::start(&args.model, backend, options)?;
    println!("serving {} on http://{} (Ctrl-C to stop)", args.model.display(), server.addr());
    server.wait()?;
    println!("stopped");
    Ok(())
}
