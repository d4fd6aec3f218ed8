//! The usage error (a mistake in what the user typed found after clap's checks, which exits 2
//! with clap's kind of message), and the library's errors told in the command line's terms: the
//! flag that sets what they name.

use crate::presets::setting_flag;

/// A mistake in what the user typed, found after clap's own checks (a preset or an architecture
/// that does not exist, a class the model lacks): exit 2 with clap's kind of message.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `result`'s error as a usage error.
pub fn typed<T, E: std::fmt::Display>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|e| Usage(e.to_string()).into())
}

/// `e` in the command line's terms, naming the flags to type; None where the library's own
/// message says it.
pub fn in_cli_terms(e: &wgcnn::Error) -> Option<String> {
    use wgcnn::Error;
    Some(match e {
        Error::NoAdapter { detail } => format!(
            "no GPU or software adapter found{detail}: install Mesa's software Vulkan driver \
             (`apt-get install mesa-vulkan-drivers`) or run on the native CPU backend with `--device cpu`"
        ),
        Error::AdapterNotFound { wanted, found } => format!(
            "no adapter matches --device {wanted:?}; adapters found: {found}. Type --device auto (the best \
             found), software (lavapipe: the WGSL kernels on the CPU) or cpu (the CPU backend)"
        ),
        Error::Setting { field, reason } => format!("{} {reason}", setting_flag(field)?.0),
        Error::RunFolderInUse { out, model: true, checkpoint } => {
            let out = out.display();
            let extend = match *checkpoint {
                true => format!(" (with its checkpoint: --resume {out} --epochs N trains it further)"),
                false => String::new(),
            };
            format!(
                "{out}: the run folder already holds a model{extend}; pass --overwrite to replace it, or choose \
                 another --out"
            )
        }
        Error::RunFolderInUse { out, model: false, .. } => format!(
            "{0}: the run folder holds the checkpoint of a run; pass --resume {0} to continue it, --overwrite \
             to start again, or choose another --out",
            out.display()
        ),
        Error::RunFinished { out, done, epochs, early_stopped: false } => format!(
            "{}: the run is finished: it ran {done} of {epochs} epochs; give --epochs more than {done} to train \
             it further",
            out.display()
        ),
        _ => return None,
    })
}
