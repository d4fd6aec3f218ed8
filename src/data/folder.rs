//! A folder of class subfolders as a dataset, as Keras's `image_dataset_from_directory` reads it,
//! made to survive real folders: every file is recognised by its content, decoded and resized once
//! on all cores and kept as u8; files that are empty, cut short, not images or too small are
//! skipped with their reason; byte-identical files are found, the extra copies within a class left
//! out (a copy in the training split and another in the test split would inflate the test score),
//! and a file present in two classes is a label conflict, left out by default. The
//! [`LoadReport`] says what happened to every file that was not used.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use image::ImageFormat;
use rayon::prelude::*;
use thiserror::Error;

use crate::data::image::{DecodeError, DecodeLimits, InputFormat, decode_and_resize, format_name};
use crate::files::ReadError;
use crate::{Error, Result};

/// What [`ImageFolder::load`] keeps besides the clean files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep files whose exact bytes are in two or more classes (one copy per class); by default
    /// they are left out, as their label is noise.
    pub keep_conflicts: bool,
    /// Keep every copy of a file repeated within one class; by default only the first (by path).
    pub keep_duplicates: bool,
    /// Skip images whose shorter side is under this many pixels (a 1x1 image resized to the
    /// input is a flat colour, not a picture). 1 keeps everything.
    pub min_side: u32,
    /// What one file may cost to read and decode; a file over them is skipped and reported.
    pub limits: DecodeLimits,
    /// The fewest class folders accepted: 2 to train, 1 to evaluate on a subset of a model's
    /// classes.
    pub min_classes: usize,
}

impl Default for LoadOptions {
    /// Conflicts and repeated copies left out; images of at least 16 px a side; the default
    /// [`DecodeLimits`]; two classes at least.
    fn default() -> Self {
        Self {
            keep_conflicts: false,
            keep_duplicates: false,
            min_side: 16,
            limits: DecodeLimits::default(),
            min_classes: 2,
        }
    }
}

/// Images held as u8, decoded and resized once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// How every image was prepared.
    pub format: InputFormat,
    /// `len() * format.sample_len()` values: image after image, each planar (CHW).
    pub images: Vec<u8>,
    /// Class index of each image, into `class_names`.
    pub labels: Vec<u32>,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// The file each image came from.
    pub paths: Vec<PathBuf>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn sample_len(&self) -> usize {
        self.format.sample_len()
    }

    /// Image `i`, planar u8. Panics if `i >= len()`, as slice indexing does.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.sample_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// How many of the images at `indices` are in each class.
    pub fn class_counts(&self, indices: &[usize]) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &i in indices {
            counts[self.labels[i] as usize] += 1;
        }
        counts
    }
}

/// Why a file was not used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SkipReason {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// Not read: not a regular file, a symbolic link loop, over the size limit, or an I/O error.
    #[error("{0}")]
    File(#[from] ReadError),
    #[error("too small: {width}x{height}, under the minimum of {min_side} px a side")]
    TooSmall { width: u32, height: u32, min_side: u32 },
}

impl SkipReason {
    /// The reason's kind, for the summary: empty, truncated, not an image, unreadable, too small.
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::Decode(DecodeError::Empty) => "empty",
            SkipReason::Decode(DecodeError::Truncated { .. }) => "truncated",
            SkipReason::Decode(DecodeError::NotAnImage) => "not an image",
            SkipReason::Decode(DecodeError::Unreadable { .. } | DecodeError::DecoderPanicked { .. })
            | SkipReason::File(ReadError::Io(_)) => "unreadable",
            SkipReason::Decode(DecodeError::TooLarge { .. } | DecodeError::TooManyBytes { .. })
            | SkipReason::File(ReadError::TooLarge { .. }) => "over the limits",
            SkipReason::File(ReadError::NotRegular { .. }) => "not a regular file",
            SkipReason::File(ReadError::SymlinkLoop) => "symbolic link loop",
            SkipReason::TooSmall { .. } => "too small",
        }
    }
}

/// A file that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it gave no usable image.
    pub reason: SkipReason,
}

/// Files with identical bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// Sorted by class, then path.
    pub paths: Vec<PathBuf>,
    /// The distinct classes the copies are in, sorted.
    pub classes: Vec<String>,
}

impl DuplicateGroup {
    /// The same file in two or more classes: its label is noise.
    pub fn is_conflict(&self) -> bool {
        self.classes.len() > 1
    }
}

/// An image whose file extension names another format than its content (it is read by content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionMismatch {
    /// The file.
    pub path: PathBuf,
    /// The format found in the content.
    pub format: ImageFormat,
}

/// What loading found: every file is used, skipped, or left out as a duplicate or conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// The folder read.
    pub root: PathBuf,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Files found in the class folders (hidden files, whose names start with a dot, aside).
    pub found: usize,
    /// Images used, per class.
    pub used_per_class: Vec<usize>,
    /// Files that gave no usable image.
    pub skipped: Vec<SkippedFile>,
    /// Groups of two or more byte-identical decodable files.
    pub duplicates: Vec<DuplicateGroup>,
    /// Files left out because their bytes are in two or more classes.
    pub conflicts_left_out: usize,
    /// Repeated copies left out within a class.
    pub duplicates_left_out: usize,
    /// Decodable files whose extension does not match their content.
    pub mismatched_extensions: Vec<ExtensionMismatch>,
}

impl LoadReport {
    /// Images used in all.
    pub fn used(&self) -> usize {
        self.used_per_class.iter().sum()
    }

    /// Skipped files per reason kind ([`SkipReason::kind`]), sorted by kind.
    pub fn skipped_by_reason(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for file in &self.skipped {
            match counts.iter_mut().find(|(kind, _)| *kind == file.reason.kind()) {
                Some((_, n)) => *n += 1,
                None => counts.push((file.reason.kind(), 1)),
            }
        }
        counts.sort_unstable();
        counts
    }

    /// The groups of identical files that span classes.
    pub fn conflicts(&self) -> impl Iterator<Item = &DuplicateGroup> {
        self.duplicates.iter().filter(|g| g.is_conflict())
    }

    fn relative<'a>(&self, path: &'a Path) -> std::path::Display<'a> {
        path.strip_prefix(&self.root).unwrap_or(path).display()
    }
}

/// Lines printed per list before "... and N more".
const LIST_LINES: usize = 20;

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} files found in {} classes", self.root.display(), self.found, self.classes.len())?;
        let per_class: Vec<String> =
            self.classes.iter().zip(&self.used_per_class).map(|(c, n)| format!("{c} {n}")).collect();
        writeln!(f, "used: {} ({})", self.used(), per_class.join(", "))?;
        let by_reason: Vec<String> = self.skipped_by_reason().iter().map(|(k, n)| format!("{k} {n}")).collect();
        match by_reason.is_empty() {
            true => writeln!(f, "skipped: 0")?,
            false => writeln!(f, "skipped: {} ({})", self.skipped.len(), by_reason.join(", "))?,
        }
        let skipped = self.skipped.iter().map(|s| format!("{}: {}", self.relative(&s.path), s.reason));
        list(f, skipped, self.skipped.len())?;
        writeln!(
            f,
            "identical files: {} groups; left out: label conflicts {}, repeated copies {}",
            self.duplicates.len(),
            self.conflicts_left_out,
            self.duplicates_left_out
        )?;
        let groups = self.duplicates.iter().map(|g| {
            let paths: Vec<String> = g.paths.iter().map(|p| self.relative(p).to_string()).collect();
            let what = if g.is_conflict() { "label conflict" } else { "same class" };
            format!("{what}: {}", paths.join(" = "))
        });
        list(f, groups, self.duplicates.len())?;
        writeln!(f, "extension not matching the content (read by content): {}", self.mismatched_extensions.len())?;
        let mismatches = self
            .mismatched_extensions
            .iter()
            .map(|m| format!("{} is {}", self.relative(&m.path), format_name(m.format)));
        list(f, mismatches, self.mismatched_extensions.len())
    }
}

fn list(f: &mut fmt::Formatter<'_>, lines: impl Iterator<Item = String>, total: usize) -> fmt::Result {
    for line in lines.take(LIST_LINES) {
        writeln!(f, "  {line}")?;
    }
    if total > LIST_LINES {
        writeln!(f, "  ... and {} more", total - LIST_LINES)?;
    }
    Ok(())
}

/// Reads a folder of class subfolders.
pub struct ImageFolder;

/// One file's fate after decoding.
enum Decoded {
    Image { format: ImageFormat, hash: u64, len: usize },
    Skipped(SkipReason),
}

impl ImageFolder {
    /// Loads `dir`: one class per subfolder (sorted by name, as Keras does), every file below it
    /// (nested folders too) decoded by content and prepared per `format` on all cores.
    ///
    /// Errors: `dir` missing or not a folder, fewer than two class folders, a class folder with
    /// no files or with no usable image, or a bad `format`. Bad files are not errors: they are
    /// in the report.
    pub fn load(dir: &Path, format: &InputFormat, options: &LoadOptions) -> Result<(Dataset, LoadReport)> {
        format.validate()?;
        options.limits.validate()?;
        let folder_error = |reason: String| Error::Dataset { path: dir.to_path_buf(), reason };
        let classes = class_folders(dir).map_err(|e| folder_error(format!("cannot list it: {e}")))?;
        if classes.len() < options.min_classes.max(1) {
            return Err(folder_error(format!(
                "expected a subfolder per class, at least {}, found {}{}",
                options.min_classes.max(1),
                classes.len(),
                if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) }
            )));
        }
        let mut files: Vec<(PathBuf, u32)> = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = dir.join(class);
            let mut found = Vec::new();
            list_files(&class_dir, &mut found)
                .map_err(|e| folder_error(format!("cannot list class folder {}: {e}", class_dir.display())))?;
            if found.is_empty() {
                return Err(folder_error(format!("class folder {class:?} holds no files")));
            }
            found.sort();
            files.extend(found.into_iter().map(|path| (path, label as u32)));
        }

        // Decode straight into one buffer of a slot per file, so memory is the resized images only.
        let sample_len = format.sample_len();
        let mut images = vec![0u8; files.len() * sample_len];
        let decoded: Vec<Decoded> = images
            .par_chunks_mut(sample_len)
            .zip(files.par_iter())
            .map(|(slot, (path, _))| decode_file(path, format, options, slot))
            .collect();

        let keep = choose_kept(&files, &decoded, &classes, options)?;
        let mut report = LoadReport {
            root: dir.to_path_buf(),
            classes: classes.clone(),
            found: files.len(),
            used_per_class: vec![0; classes.len()],
            skipped: Vec::new(),
            duplicates: keep.groups,
            conflicts_left_out: keep.conflicts_left_out,
            duplicates_left_out: keep.duplicates_left_out,
            mismatched_extensions: Vec::new(),
        };
        let mut dataset = Dataset {
            format: *format,
            images: Vec::new(),
            labels: Vec::new(),
            class_names: classes,
            paths: Vec::new(),
        };
        for (slot, ((path, label), outcome)) in files.into_iter().zip(decoded).enumerate() {
            match outcome {
                Decoded::Skipped(reason) => report.skipped.push(SkippedFile { path, reason }),
                Decoded::Image { format: found, .. } => {
                    if !extension_matches(&path, found) {
                        report.mismatched_extensions.push(ExtensionMismatch { path: path.clone(), format: found });
                    }
                    if keep.kept[slot] {
                        // Compact in place: slot `len` is at or before slot `slot`.
                        let at = dataset.labels.len();
                        images.copy_within(slot * sample_len..(slot + 1) * sample_len, at * sample_len);
                        report.used_per_class[label as usize] += 1;
                        dataset.labels.push(label);
                        dataset.paths.push(path);
                    }
                }
            }
        }
        images.truncate(dataset.labels.len() * sample_len);
        images.shrink_to_fit();
        dataset.images = images;
        if let Some(empty) = report.used_per_class.iter().position(|&n| n == 0) {
            return Err(folder_error(format!(
                "class {:?} has no usable image; what loading found:\n{report}",
                report.classes[empty]
            )));
        }
        Ok((dataset, report))
    }
}

/// Names of the subfolders of `dir` that are not hidden, sorted.
fn class_folders(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            classes.push(name);
        }
    }
    classes.sort();
    Ok(classes)
}

/// Every entry under `dir` that is not a folder nor hidden, recursively. Only real folders are
/// entered: a symbolic link is listed like a file, and reading it follows it only to a regular
/// file (a link to a folder, a FIFO or a device, or a loop of links, is then a skipped file), so a
/// link back to a parent folder cannot make the walk endless.
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads (within the limits), hashes and decodes one file into `slot`.
fn decode_file(path: &Path, format: &InputFormat, options: &LoadOptions, slot: &mut [u8]) -> Decoded {
    let bytes = match options.limits.read_file(path) {
        Ok(bytes) => bytes,
        Err(e) => return Decoded::Skipped(e.into()),
    };
    let min_side = options.min_side;
    match decode_and_resize(&bytes, format, &options.limits) {
        Err(e) => Decoded::Skipped(e.into()),
        Ok(image) if image.original_size.0.min(image.original_size.1) < min_side => {
            let (width, height) = image.original_size;
            Decoded::Skipped(SkipReason::TooSmall { width, height, min_side })
        }
        Ok(image) => {
            slot.copy_from_slice(&image.pixels);
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            Decoded::Image { format: image.format, hash: hasher.finish(), len: bytes.len() }
        }
    }
}

/// Whether the file's extension is one of its content format's.
fn extension_matches(path: &Path, format: ImageFormat) -> bool {
    path.extension().and_then(ImageFormat::from_extension) == Some(format)
}

/// Which decoded files are used, and the groups of identical ones.
struct Kept {
    kept: Vec<bool>,
    groups: Vec<DuplicateGroup>,
    conflicts_left_out: usize,
    duplicates_left_out: usize,
}

/// Groups identical files (same length and hash, then confirmed byte for byte) and decides which
/// are used per `options`. Files are in class-then-path order, so the first copy is kept.
fn choose_kept(
    files: &[(PathBuf, u32)],
    decoded: &[Decoded],
    classes: &[String],
    options: &LoadOptions,
) -> Result<Kept> {
    let mut kept: Vec<bool> = decoded.iter().map(|d| matches!(d, Decoded::Image { .. })).collect();
    let mut candidates: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    for (i, d) in decoded.iter().enumerate() {
        if let Decoded::Image { hash, len, .. } = d {
            candidates.entry((*len, *hash)).or_default().push(i);
        }
    }
    let mut same_key: Vec<Vec<usize>> = candidates.into_values().filter(|g| g.len() > 1).collect();
    same_key.sort_unstable();
    let (mut groups, mut conflicts_left_out, mut duplicates_left_out) = (Vec::new(), 0, 0);
    for members in same_key {
        for group in identical_subgroups(files, &members, &options.limits)? {
            let mut group_classes: Vec<u32> = group.iter().map(|&i| files[i].1).collect();
            group_classes.dedup();
            let conflict = group_classes.len() > 1;
            if conflict && !options.keep_conflicts {
                conflicts_left_out += group.len();
                group.iter().for_each(|&i| kept[i] = false);
            } else if !options.keep_duplicates {
                for pair in group.windows(2) {
                    if files[pair[0]].1 == files[pair[1]].1 {
                        kept[pair[1]] = false;
                        duplicates_left_out += 1;
                    }
                }
            }
            groups.push(DuplicateGroup {
                paths: group.iter().map(|&i| files[i].0.clone()).collect(),
                classes: group_classes.iter().map(|&c| classes[c as usize].clone()).collect(),
            });
        }
    }
    Ok(Kept { kept, groups, conflicts_left_out, duplicates_left_out })
}

/// Splits files that share a length and hash into groups of truly identical bytes (of two or
/// more), by reading them again.
fn identical_subgroups(files: &[(PathBuf, u32)], members: &[usize], limits: &DecodeLimits) -> Result<Vec<Vec<usize>>> {
    let read = |i: usize| {
        limits
            .read_file(&files[i].0)
            .map_err(|e| Error::Dataset { path: files[i].0.clone(), reason: format!("reading it again failed: {e}") })
    };
    let mut groups: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
    for &i in members {
        let bytes = read(i)?;
        match groups.iter_mut().find(|(b, _)| *b == bytes) {
            Some((_, group)) => group.push(i),
            None => groups.push((bytes, vec![i])),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).filter(|g| g.len() > 1).collect())
}
