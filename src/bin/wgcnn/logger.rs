//! The logger: the wgcnn library's warnings and errors on stderr, prefixed as the command's
//! other messages.

/// The wgcnn library's log records (e.g. the server's own errors) on stderr, warnings and worse,
/// each line prefixed as the command's other messages: `wgcnn serve: 500 Internal Server Error ...`.
/// Other crates' records (wgpu's) stay unshown, as they were before there was a logger.
struct StderrLog {
    prefix: &'static str,
}

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().split("::").next() == Some("wgcnn")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}: {}", self.prefix, record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger, lines prefixed with `prefix` (`wgcnn`, or `wgcnn serve`).
pub fn install(prefix: &'static str) {
    // Set once, before any thread starts: it cannot fail.
    let _ = log::set_logger(Box::leak(Box::new(StderrLog { prefix })));
    log::set_max_level(log::LevelFilter::Warn);
}
