//! Classification metrics: the confusion matrix of an evaluation and the per-class precision,
//! recall, F1 and support computed from it, printed like scikit-learn's `classification_report`
//! so the numbers read the same as the Python projects this one is compared with.
//!
//! Divisions by zero give 0, as scikit-learn's `zero_division` default does (without its warning):
//! a class never predicted has precision 0, a class absent from the data has recall 0, and a class
//! whose precision and recall are both 0 has F1 0. No metric is ever NaN.

use std::fmt;

use serde::Serialize;

use crate::{Error, Result};

/// Counts of (true class, predicted class) pairs over a fixed list of classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    classes: Vec<String>,
    /// `counts[true][predicted]`.
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` (names in class-index order).
    pub fn new<S: Into<String>>(classes: impl IntoIterator<Item = S>) -> Self {
        let classes: Vec<String> = classes.into_iter().map(Into::into).collect();
        let counts = vec![vec![0; classes.len()]; classes.len()];
        ConfusionMatrix { classes, counts }
    }

    /// Counts one sample of class `actual` predicted as `predicted`; an index past the classes is
    /// an error that names it.
    pub fn add(&mut self, actual: usize, predicted: usize) -> Result<()> {
        let classes = self.classes.len();
        if actual >= classes || predicted >= classes {
            return Err(Error::Invalid(format!(
                "confusion matrix: pair (true {actual}, predicted {predicted}) is outside the {classes} classes"
            )));
        }
        self.counts[actual][predicted] += 1;
        Ok(())
    }

    /// The matrix of `(true, predicted)` pairs over `classes`.
    pub fn from_pairs<S: Into<String>>(
        classes: impl IntoIterator<Item = S>,
        pairs: impl IntoIterator<Item = (usize, usize)>,
    ) -> Result<Self> {
        let mut matrix = ConfusionMatrix::new(classes);
        for (actual, predicted) in pairs {
            matrix.add(actual, predicted)?;
        }
        Ok(matrix)
    }

    /// Class names, in class-index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Samples of class `actual` predicted as `predicted`.
    pub fn count(&self, actual: usize, predicted: usize) -> u64 {
        self.counts[actual][predicted]
    }

    /// All samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Samples predicted right (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.classes.len()).map(|c| self.counts[c][c]).sum()
    }

    /// Samples whose true class is `class` (its row).
    pub fn support(&self, class: usize) -> u64 {
        self.counts[class].iter().sum()
    }

    /// Samples predicted as `class` (its column).
    pub fn predicted(&self, class: usize) -> u64 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    /// Precision, recall, F1 and support of every class, with accuracy and the averages.
    pub fn report(&self) -> ClassificationReport {
        let classes: Vec<ClassScores> = self
            .classes
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let hits = self.counts[c][c];
                let support = self.support(c);
                let precision = ratio(hits, self.predicted(c));
                let recall = ratio(hits, support);
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassScores { class: name.clone(), scores: Scores { precision, recall, f1, support } }
            })
            .collect();
        let total = self.total();
        ClassificationReport {
            macro_avg: average(&classes, total, |_| 1.0),
            weighted_avg: average(&classes, total, |s| s.support as f64),
            accuracy: ratio(self.correct(), total),
            classes,
        }
    }
}

/// The mean of each score over `classes` weighted by `weight`, 0 when the weights sum to 0.
fn average(classes: &[ClassScores], total: u64, weight: impl Fn(&Scores) -> f64) -> Scores {
    let weights: f64 = classes.iter().map(|c| weight(&c.scores)).sum();
    let mean = |metric: fn(&Scores) -> f64| {
        let sum: f64 = classes.iter().map(|c| weight(&c.scores) * metric(&c.scores)).sum();
        if weights > 0.0 { sum / weights } else { 0.0 }
    };
    Scores { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1), support: total }
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The matrix as a table: true classes down the rows, predicted classes across the columns.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CORNER: &str = "true \\ predicted";
        let name_width = self.classes.iter().map(|c| c.chars().count()).chain([CORNER.len()]).max().unwrap_or(0);
        let widths: Vec<usize> = (0..self.classes.len())
            .map(|p| {
                let widest_count = (0..self.classes.len()).map(|t| self.counts[t][p].to_string().len()).max();
                widest_count.unwrap_or(0).max(self.classes[p].chars().count())
            })
            .collect();
        write!(f, "{CORNER:>name_width$}")?;
        for (name, width) in self.classes.iter().zip(&widths) {
            write!(f, "  {name:>width$}")?;
        }
        for (name, row) in self.classes.iter().zip(&self.counts) {
            write!(f, "\n{name:>name_width$}")?;
            for (count, width) in row.iter().zip(&widths) {
                write!(f, "  {count:>width$}")?;
            }
        }
        Ok(())
    }
}

/// Precision, recall and F1 of one class or one average, with the samples they cover.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    #[serde(rename = "f1-score")]
    pub f1: f64,
    /// Samples of the class (for an average: all samples).
    pub support: u64,
}

/// The scores of one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    pub class: String,
    #[serde(flatten)]
    pub scores: Scores,
}

/// What scikit-learn's `classification_report` shows: per-class scores, accuracy, and the macro
/// (unweighted mean over classes, absent ones included) and weighted (by support) averages.
///
/// `Display` prints scikit-learn's layout with 2 decimals; a precision sets the decimals
/// (`format!("{report:.4}")` is `digits=4`). Unlike scikit-learn's string, it ends without a newline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub classes: Vec<ClassScores>,
    pub accuracy: f64,
    #[serde(rename = "macro avg")]
    pub macro_avg: Scores,
    #[serde(rename = "weighted avg")]
    pub weighted_avg: Scores,
}

impl fmt::Display for ClassificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LONGEST_HEADING: &str = "weighted avg";
        let digits = f.precision().unwrap_or(2);
        let width = self.classes.iter().map(|c| c.class.chars().count()).chain([LONGEST_HEADING.len(), digits]).max();
        let width = width.unwrap_or(0);
        let row = |heading: &str, s: &Scores| {
            format!(
                "{heading:>width$}  {:>9.digits$} {:>9.digits$} {:>9.digits$} {:>9}",
                s.precision, s.recall, s.f1, s.support
            )
        };
        let header = format!("{:>width$}  {:>9} {:>9} {:>9} {:>9}", "", "precision", "recall", "f1-score", "support");
        let accuracy = format!(
            "{:>width$}  {:>9} {:>9} {:>9.digits$} {:>9}",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        );
        let lines =
            [header, String::new()].into_iter().chain(self.classes.iter().map(|c| row(&c.class, &c.scores))).chain([
                String::new(),
                accuracy,
                row("macro avg", &self.macro_avg),
                row(LONGEST_HEADING, &self.weighted_avg),
            ]);
        f.write_str(&lines.collect::<Vec<_>>().join("\n"))
    }
}
