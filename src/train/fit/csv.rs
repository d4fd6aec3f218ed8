//! The per-epoch metrics CSV.

use std::fmt::Write as _;
use std::path::Path;

use crate::model::history::History;
use crate::{Error, Result};

const METRICS_CSV_HEADER: &str = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds";

/// The history as CSV: the header, then one row per epoch with values that parse back exactly;
/// the validation cells are empty for epochs without validation.
pub(super) fn metrics_csv(history: &History) -> String {
    let optional = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut csv = format!("{METRICS_CSV_HEADER}\n");
    for r in &history.epochs {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            r.epoch,
            r.loss,
            r.accuracy,
            optional(r.val_loss),
            optional(r.val_accuracy),
            r.lr,
            r.seconds
        );
    }
    csv
}

/// Writes the CSV through a temporary file renamed into place, as every file the user keeps.
pub(super) fn write_csv(path: &Path, contents: &str) -> Result<()> {
    crate::files::write_atomically(path, contents.as_bytes())
        .map_err(|e| Error::Invalid(format!("writing the metrics CSV {}: {e}", path.display())))
}
