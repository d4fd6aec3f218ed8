//! The backend --device chooses, shared by every command that runs a model, and how the choice
//! of `auto` is told.

use wgcnn::gpu::DeviceChoice;
use wgcnn::model::backend::Backend;

use crate::errors::{Usage, in_cli_terms};

/// ", auto: <why>" when `auto` chose.
pub fn because(why: &Option<String>) -> String {
    why.as_ref().map(|why| format!("; auto: {why}")).unwrap_or_default()
}

/// The backend `choice` names; no adapter of that name is a usage error, with what to type.
pub fn backend(choice: &DeviceChoice) -> anyhow::Result<Backend> {
    Ok(chosen_backend(choice)?.0)
}

/// As [`backend`], with why `auto` chose it ([`Backend::choose`]).
pub fn chosen_backend(choice: &DeviceChoice) -> anyhow::Result<(Backend, Option<String>)> {
    match Backend::choose(choice) {
        Err(e @ wgcnn::Error::AdapterNotFound { .. }) => Err(Usage(in_cli_terms(&e).unwrap_or(e.to_string())).into()),
        other => Ok(other?),
    }
}
