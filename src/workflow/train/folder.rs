//! The run folder while a run writes into it: refused when it holds another run's work, cleaned
//! up after a failure (what the run created goes, its checkpoint stays), and the outputs staged
//! beside it and moved in whole.

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use super::checkpoint::CHECKPOINT_FILE;
use super::settings::TrainSettings;
use crate::{Error, Result};

/// A fresh run never trains into a folder that holds a model or a checkpoint, unless told to.
pub(super) fn check_fresh_run_folder(settings: &TrainSettings) -> Result<()> {
    let out = &settings.out_dir;
    if settings.overwrite {
        return Ok(());
    }
    let (model, checkpoint) = (out.join("model.safetensors").exists(), out.join(CHECKPOINT_FILE).exists());
    if model || checkpoint {
        return Err(Error::RunFolderInUse { out: out.clone(), model, checkpoint });
    }
    Ok(())
}

/// Removes what an earlier process killed while writing left: the temporary files of the
/// checkpoint and the metrics CSV (the files themselves are whole, written by rename).
pub(super) fn remove_stale_temporary_files(out: &Path) {
    let Ok(entries) = fs::read_dir(out) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let temporary = [CHECKPOINT_FILE, "history.csv"].iter().any(|file| name.starts_with(&format!(".{file}.")));
        if temporary && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The folders that creating a path makes: the outermost of it and its parents that did not exist
/// yet, so that a failed run can remove what it made and nothing else.
struct CreatedFolders {
    outermost: Option<PathBuf>,
}

impl CreatedFolders {
    /// Notes, before anything is created, which of `path` and its parents do not exist.
    fn before_creating(path: &Path) -> CreatedFolders {
        let outermost = path.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).last();
        CreatedFolders { outermost: outermost.map(Path::to_path_buf) }
    }

    /// Removes `path` and its parents out to the outermost noted, each only while it is empty (a
    /// folder someone else wrote into stays, and so do its parents).
    fn remove_empty(&self, path: &Path) {
        let Some(outermost) = &self.outermost else { return };
        for dir in path.ancestors() {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
                _ if dir == outermost => break,
                _ => {}
            }
        }
    }
}

/// The run folder while training writes into it. A run that fails leaves no folder it created
/// behind unless a checkpoint of its own is in it: work saved is kept (and resumes), debris is not.
pub(super) struct RunFolder<'a> {
    out: &'a Path,
    created: CreatedFolders,
    /// Epochs done at the last checkpoint written, once one is.
    checkpoint_epochs: Cell<Option<usize>>,
    /// Whether the run's outputs are in the folder (a run that diverged publishes its last good
    /// weights, then fails).
    published: Cell<bool>,
}

impl<'a> RunFolder<'a> {
    pub(super) fn before_training(out: &'a Path) -> RunFolder<'a> {
        RunFolder {
            out,
            created: CreatedFolders::before_creating(out),
            checkpoint_epochs: Cell::new(None),
            published: Cell::new(false),
        }
    }

    pub(super) fn checkpointed(&self, epochs: usize) {
        self.checkpoint_epochs.set(Some(epochs));
    }

    pub(super) fn published(&self) {
        self.published.set(true);
    }

    /// `trained`, with the folder cleaned up when it is an error: removed if this run created it
    /// and wrote no checkpoint; otherwise the error says which checkpoint is kept.
    pub(super) fn after_training<T>(self, trained: Result<T>) -> Result<T> {
        let e = match trained {
            Ok(done) => return Ok(done),
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) if self.published.get() => return Err(e),
            Err(e) => e,
        };
        let kept = match self.checkpoint_epochs.get() {
            None => {
                if self.created.outermost.is_some() {
                    let _ = fs::remove_dir_all(self.out);
                    self.created.remove_empty(self.out);
                }
                return Err(e);
            }
            Some(0) => "written before the first step".to_string(),
            Some(epochs) => format!("of epoch {epochs}"),
        };
        Err(Error::Invalid(format!(
            "{e} (the checkpoint {kept} is kept in {}, and resuming the run goes on from it)",
            self.out.display()
        )))
    }
}

/// A run's outputs before they are the run folder's: a hidden folder beside it, removed (with the
/// parent folders it had to create) unless [`Staging::publish`] moved its files in.
pub(super) struct Staging {
    path: PathBuf,
    created: CreatedFolders,
    published: bool,
}

impl Staging {
    pub(super) fn beside(out: &Path) -> Result<Staging> {
        let name = out.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let created = CreatedFolders::before_creating(&path);
        fs::create_dir_all(&path)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        Ok(Staging { path, created, published: false })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves every file into `out` (created if missing), replacing files of the same names.
    pub(super) fn publish(mut self, out: &Path) -> Result<()> {
        let error = |e: std::io::Error| Error::Invalid(format!("{}: cannot write the run folder: {e}", out.display()));
        fs::create_dir_all(out).map_err(error)?;
        for entry in fs::read_dir(&self.path).map_err(error)? {
            let entry = entry.map_err(error)?;
            fs::rename(entry.path(), out.join(entry.file_name())).map_err(error)?;
        }
        self.published = true;
        fs::remove_dir(&self.path).map_err(error)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.path);
            self.created.remove_empty(&self.path);
        }
    }
}
