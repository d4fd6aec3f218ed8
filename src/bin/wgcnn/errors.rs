//! The usage error: a mistake in what the user typed found after clap's checks, which exits 2
//! with clap's kind of message.

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
