//! The `wgcnn` command line: parses the arguments, runs the command, and prints its error and
//! maps it to an exit code.

mod cli;
mod commands;
mod device;
mod errors;
mod logger;
mod presets;
mod progress;
mod signals;

use std::process::ExitCode;

use cli::{Cli, Command};
use errors::Usage;
use signals::Interrupted;

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let prefix = if matches!(cli.command, Command::Serve(_)) { "wgcnn serve" } else { "wgcnn" };
    logger::install(prefix);
    if !matches!(cli.command, Command::Serve(_)) {
        // The server keeps Rust's default (ignored), as a client that goes away must not end it.
        signals::default_sigpipe();
    }
    // Which flags the user typed (not defaults), for `train --resume`.
    let given = |id: &str| {
        let sub = matches.subcommand().map(|(_, sub)| sub);
        [Some(&matches), sub].into_iter().flatten().any(|m| {
            // value_source panics on an id the command does not have.
            m.try_get_raw(id).is_ok_and(|raw| raw.is_some())
                && matches!(
                    m.value_source(id),
                    Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
                )
        })
    };
    let result = cli.limits.limits().and_then(|limits| commands::run(cli.command, &cli.device, limits, &given));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<Usage>() {
                eprintln!("error: {usage}\n\nFor more information, try '--help'.");
                ExitCode::from(2)
            } else if let Some(interrupted) = e.downcast_ref::<Interrupted>() {
                eprintln!("wgcnn: {interrupted}");
                ExitCode::from(interrupted.code)
            } else if let Some(line) = e.downcast_ref::<wgcnn::Error>().and_then(errors::in_cli_terms) {
                eprintln!("wgcnn: {line}");
                ExitCode::FAILURE
            } else {
                eprintln!("wgcnn: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}
