//! Reading a layer token from the left, for the kinds' parsers.

/// The rest of a token, read from the left.
pub(super) struct Cursor<'a>(pub &'a str);

impl Cursor<'_> {
    /// Skips `prefix` if the rest starts with it.
    pub fn eat(&mut self, prefix: &str) -> bool {
        match self.0.strip_prefix(prefix) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// Reads a decimal number, if the rest starts with a digit and it fits.
    pub fn number(&mut self) -> Option<usize> {
        let digits = self.0.len() - self.0.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let value = self.0[..digits].parse().ok()?;
        self.0 = &self.0[digits..];
        Some(value)
    }

    /// Reads the whole rest as a `T`.
    pub fn rest<T: std::str::FromStr>(&mut self) -> Option<T> {
        let value = self.0.parse().ok()?;
        self.0 = "";
        Some(value)
    }
}
