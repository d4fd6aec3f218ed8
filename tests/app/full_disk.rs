//! `wgcnn train` onto a full disk: a run that fails leaves no folder it created unless a
//! checkpoint of its own is in it, then that checkpoint loads; no temporary file or staging folder
//! is left. The disk is a small tmpfs mounted for each test where the tests may mount one (as
//! root, or with CAP_SYS_ADMIN); elsewhere each test says that it is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use wgcnn::model::file::ModelFile;

use crate::cli::{fails, ok};

/// A tmpfs of a given size, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None`, having said why, where this process may not mount one.
    fn mount(bytes: u64, test: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { dir }),
            Ok(output) => {
                eprintln!(
                    "{test}: skipped: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("{test}: skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// What is on the disk, every file and folder, as paths relative to it.
fn everything(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                walk(root, &path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

/// Synthetic faces at 16x16 in `dir/data`.
fn data(dir: &Path) -> PathBuf {
    ok(dir, &["synth", "--out", "data", "--per-class", "12", "--size", "16"]);
    dir.join("data")
}

fn train_args<'a>(data: &'a str, out: &'a str, arch: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let args = ["train", data, "--out", out, "--arch", arch, "--size", "16", "--batch-size", "4", "--epochs", epochs];
    args.to_vec()
}

/// The bytes of a run's checkpoint, and of what its run publishes beside it, from a run on the
/// ordinary disk.
fn run_sizes(dir: &Path, data: &Path, arch: &str) -> (u64, u64) {
    let out = dir.join(format!("sizes-{arch}"));
    ok(dir, &train_args(data.to_str().unwrap(), out.to_str().unwrap(), arch, "1"));
    let size = |name: &str| std::fs::metadata(out.join(name)).unwrap().len();
    let checkpoint = size("checkpoint.safetensors");
    let published: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !["checkpoint.safetensors", "history.csv"].contains(&e.file_name().to_str().unwrap()))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    (checkpoint, published)
}

/// A model of about 6,500 parameters: its checkpoint (weights, Adam's moments, the best and the
/// epoch-start weights) takes about 130 kB.
const LARGER: &str = "c8-p-f-d16-d1";
/// 769 parameters: its checkpoint is small beside the plots a run publishes.
const SMALLER: &str = "f-d1";

#[test]
fn a_run_that_cannot_write_its_first_checkpoint_leaves_no_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let Some(disk) = SmallDisk::mount(64 << 10, "a_run_that_cannot_write_its_first_checkpoint_leaves_no_folder") else {
        return;
    };
    // The run folder and two parents are new: none of them may be left.
    let out = disk.path().join("runs/today/run");
    let line = fails(
        tmp.path(),
        &train_args(data.to_str().unwrap(), out.to_str().unwrap(), LARGER, "2"),
        &["checkpoint.safetensors", "No space left"],
    );
    assert!(!line.contains("is kept"), "no checkpoint was written: {line}");
    assert_eq!(everything(disk.path()), Vec::<String>::new(), "{line}");

    // A run folder that was there before stays, empty as it was.
    std::fs::create_dir(disk.path().join("mine")).unwrap();
    let out = disk.path().join("mine");
    fails(tmp.path(), &train_args(data.to_str().unwrap(), out.to_str().unwrap(), LARGER, "2"), &["No space left"]);
    assert_eq!(everything(disk.path()), vec!["mine".to_string()]);
}

#[test]
fn a_checkpoint_that_cannot_be_written_leaves_the_one_before_it_loadable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let (checkpoint, _) = run_sizes(tmp.path(), &data, LARGER);
    // The first checkpoint fits; the next, written beside it before it replaces it, does not.
    let size = checkpoint * 3 / 2;
    let test = "a_checkpoint_that_cannot_be_written_leaves_the_one_before_it_loadable";
    let Some(disk) = SmallDisk::mount(size, test) else { return };
    let out = disk.path().join("run");
    let line = fails(
        tmp.path(),
        &train_args(data.to_str().unwrap(), out.to_str().unwrap(), LARGER, "3"),
        &["No space left", "the checkpoint written before the first step is kept", "run"],
    );
    eprintln!("checkpoint of {checkpoint} bytes on a disk of {size}: {line}");
    let left = everything(disk.path());
    assert_eq!(left, ["run", "run/checkpoint.safetensors", "run/history.csv"].map(String::from).to_vec());
    let kept = ModelFile::load_checkpoint(out.join("checkpoint.safetensors")).unwrap();
    assert!(kept.history.epochs.is_empty(), "the checkpoint before the first step");
}

#[test]
fn a_run_whose_outputs_do_not_fit_keeps_its_last_checkpoint_and_no_staging_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let (checkpoint, published) = run_sizes(tmp.path(), &data, SMALLER);
    // Room for two checkpoints (the new one is written beside the old) and the metrics, with
    // pages to spare, but not for the model and the plots as well.
    let size = 2 * checkpoint + (16 << 10);
    assert!(checkpoint + published > size + (8 << 10), "the outputs ({published} bytes) must not fit in {size}");
    let test = "a_run_whose_outputs_do_not_fit_keeps_its_last_checkpoint_and_no_staging_folder";
    let Some(disk) = SmallDisk::mount(size, test) else { return };
    let out = disk.path().join("run");
    let line = fails(
        tmp.path(),
        &train_args(data.to_str().unwrap(), out.to_str().unwrap(), SMALLER, "1"),
        &["No space left", "the checkpoint of epoch 1 is kept"],
    );
    eprintln!("checkpoint of {checkpoint} bytes, outputs of {published}, on a disk of {size}: {line}");
    let left = everything(disk.path());
    assert_eq!(left, ["run", "run/checkpoint.safetensors", "run/history.csv"].map(String::from).to_vec());
    let kept = ModelFile::load_checkpoint(out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(kept.history.epochs.len(), 1);
}
