//! Signals: Ctrl-C and SIGTERM while training (a checkpoint, then a shell's exit code), and
//! SIGPIPE's default disposition restored for the commands that print.

/// The exit codes of a command stopped by a signal, as a shell reports one.
const EXIT_SIGINT: u8 = 130;
const EXIT_SIGTERM: u8 = 143;

/// Training stopped by a signal, with a checkpoint: exit with `code`.
#[derive(Debug)]
pub struct Interrupted {
    pub code: u8,
    pub line: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Interrupted {}

/// Ctrl-C and SIGTERM while training: the first sets `stop` (the trainer finishes its step and
/// writes a checkpoint) and records which signal came; the second exits at once.
pub struct StopSignals {
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    exit_code: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StopSignals {
    pub fn new() -> Self {
        Self { stop: Default::default(), exit_code: Default::default() }
    }

    /// Takes over both signals.
    pub fn install(&self) -> anyhow::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for (signal, code) in [(SIGINT, EXIT_SIGINT), (SIGTERM, EXIT_SIGTERM)] {
            // In this order: the exit acts only when an earlier signal has already set the flag.
            flag::register_conditional_shutdown(signal, code.into(), self.stop.clone())?;
            flag::register_usize(signal, self.exit_code.clone(), code.into())?;
            flag::register(signal, self.stop.clone())?;
        }
        Ok(())
    }

    pub fn exit_code(&self) -> u8 {
        match self.exit_code.load(std::sync::atomic::Ordering::Relaxed) {
            0 => EXIT_SIGINT,
            code => code as u8,
        }
    }
}

/// A closed pipe (`wgcnn predict ... | head -1`) ends the command quietly, as in every Unix tool,
/// instead of a panic in println!. Called before any thread starts.
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
