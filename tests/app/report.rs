//! The report module: metrics against hand-computed cases and against a direct count of the pairs,
//! scikit-learn's report layout, reading predictions from model outputs, and the PNG plots.
//!
//! The plots go to a fresh temporary folder removed afterwards; set `WGCNN_PLOT_DIR` to keep them
//! there instead (to look at them). Each plot is checked against its layout: every text inside its
//! room and the picture, none over another or over the data, and the drawn glyphs inside the boxes
//! the layout measured.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use wgcnn::model::history::{EpochRecord, History};
use wgcnn::report::plots::{self, GridItem, Layout, Rect, TextKind};
use wgcnn::report::{ConfusionMatrix, Prediction, Scores};

const TOLERANCE: f64 = 1e-12;

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= TOLERANCE, "{what}: got {got}, want {want}");
}

fn assert_scores(got: &Scores, [precision, recall, f1]: [f64; 3], support: u64, what: &str) {
    assert_close(got.precision, precision, &format!("{what} precision"));
    assert_close(got.recall, recall, &format!("{what} recall"));
    assert_close(got.f1, f1, &format!("{what} f1"));
    assert_eq!(got.support, support, "{what} support");
}

/// Three classes; `bird` is never predicted.
///
/// ```text
///          cat dog bird   support
/// cat        3   1    0   4
/// dog        1   2    0   3
/// bird       1   1    0   2
/// predicted  5   4    0   9
/// ```
fn pets() -> ConfusionMatrix {
    let pairs = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 0), (2, 0), (2, 1)];
    ConfusionMatrix::from_pairs(["cat", "dog", "bird"], pairs).unwrap()
}

/// scikit-learn's documentation example: y_true = [0, 1, 2, 2, 2], y_pred = [0, 0, 2, 2, 1].
fn sklearn_example() -> ConfusionMatrix {
    ConfusionMatrix::from_pairs(["class 0", "class 1", "class 2"], [(0, 0), (1, 0), (2, 2), (2, 2), (2, 1)]).unwrap()
}

#[test]
fn hand_computed_metrics_with_a_class_never_predicted() {
    let matrix = pets();
    assert_eq!((matrix.total(), matrix.correct()), (9, 5));
    let report = matrix.report();
    let names: Vec<&str> = report.classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(names, ["cat", "dog", "bird"]);
    assert_scores(&report.classes[0].scores, [3.0 / 5.0, 3.0 / 4.0, 2.0 / 3.0], 4, "cat");
    assert_scores(&report.classes[1].scores, [2.0 / 4.0, 2.0 / 3.0, 4.0 / 7.0], 3, "dog");
    // Never predicted: precision 0/0 is 0, not NaN, and so is F1.
    assert_scores(&report.classes[2].scores, [0.0, 0.0, 0.0], 2, "bird");
    assert_close(report.accuracy, 5.0 / 9.0, "accuracy");
    // Macro: plain means over the three classes, bird's zeros included.
    assert_scores(&report.macro_avg, [1.1 / 3.0, 17.0 / 36.0, 26.0 / 63.0], 9, "macro avg");
    // Weighted by support 4, 3, 2; weighted recall is always the accuracy.
    assert_scores(&report.weighted_avg, [3.9 / 9.0, 5.0 / 9.0, 92.0 / 189.0], 9, "weighted avg");
}

#[test]
fn a_class_absent_from_the_data_has_recall_zero_and_an_empty_matrix_has_no_nan() {
    // `b` has no sample but is predicted once.
    let report = ConfusionMatrix::from_pairs(["a", "b"], [(0, 0), (0, 1)]).unwrap().report();
    assert_scores(&report.classes[1].scores, [0.0, 0.0, 0.0], 0, "b");
    assert_scores(&report.classes[0].scores, [1.0, 0.5, 2.0 / 3.0], 2, "a");

    let empty = ConfusionMatrix::new(["a", "b"]).report();
    let all = empty.classes.iter().map(|c| c.scores).chain([empty.macro_avg, empty.weighted_avg]);
    for scores in all {
        assert_scores(&scores, [0.0, 0.0, 0.0], scores.support, "empty");
    }
    assert_eq!(empty.accuracy, 0.0);
}

#[test]
fn report_matches_a_direct_count_of_the_pairs() {
    let classes = ["angry", "happy", "sad", "surprise", "neutral"];
    let mut rng = StdRng::seed_from_u64(5);
    // Mostly right, and never predicting class 4, so both code paths are exercised.
    let pairs: Vec<(usize, usize)> = (0..500)
        .map(|_| {
            let actual = rng.random_range(0..5);
            let predicted = if rng.random_bool(0.6) && actual != 4 { actual } else { rng.random_range(0..4) };
            (actual, predicted)
        })
        .collect();
    let matrix = ConfusionMatrix::from_pairs(classes, pairs.iter().copied()).unwrap();
    let report = matrix.report();
    let count = |keep: &dyn Fn(usize, usize) -> bool| pairs.iter().filter(|&&(t, p)| keep(t, p)).count() as f64;
    let divide = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let mut sums = [0.0; 3];
    let mut weighted = [0.0; 3];
    for (c, class) in report.classes.iter().enumerate() {
        for p in 0..5 {
            assert_eq!(matrix.count(c, p) as f64, count(&|t, q| t == c && q == p), "cell ({c}, {p})");
        }
        let hits = count(&|t, p| t == c && p == c);
        let false_positives = count(&|t, p| t != c && p == c);
        let false_negatives = count(&|t, p| t == c && p != c);
        let precision = divide(hits, hits + false_positives);
        let recall = divide(hits, hits + false_negatives);
        let f1 = divide(2.0 * hits, 2.0 * hits + false_positives + false_negatives);
        let support = hits + false_negatives;
        assert_scores(&class.scores, [precision, recall, f1], support as u64, &class.class);
        for (i, value) in [precision, recall, f1].into_iter().enumerate() {
            sums[i] += value / 5.0;
            weighted[i] += value * support / pairs.len() as f64;
        }
    }
    assert_eq!(report.classes[4].scores.precision, 0.0, "class 4 is never predicted");
    assert_close(report.accuracy, count(&|t, p| t == p) / pairs.len() as f64, "accuracy");
    assert_scores(&report.macro_avg, sums, 500, "macro avg");
    assert_scores(&report.weighted_avg, weighted, 500, "weighted avg");
}

#[test]
fn report_prints_like_scikit_learn() {
    // scikit-learn's own output for this example (its final newline aside).
    let expected = "              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5";
    let report = sklearn_example().report();
    assert_eq!(report.to_string(), expected);
    // A precision sets the decimals, as `digits` does.
    let four = format!("{report:.4}");
    assert!(four.contains("\n     class 2     1.0000    0.6667    0.8000         3\n"), "{four}");
}

#[test]
fn long_class_names_widen_the_first_column() {
    let report = ConfusionMatrix::from_pairs(["a rather long class name", "b"], [(0, 0), (1, 1)]).unwrap().report();
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[2], "a rather long class name       1.00      1.00      1.00         1");
    assert_eq!(lines[3], "                       b       1.00      1.00      1.00         1");
    assert!(lines.iter().all(|l| l.is_empty() || l.len() == lines[2].len()), "{text}");
}

#[test]
fn confusion_matrix_prints_as_an_aligned_table() {
    let expected = "\
true \\ predicted  class 0  class 1  class 2
         class 0        1        0        0
         class 1        1        0        0
         class 2        0        1        2";
    assert_eq!(sklearn_example().to_string(), expected);
}

#[test]
fn pairs_outside_the_classes_are_errors() {
    let mut matrix = ConfusionMatrix::new(["a", "b"]);
    let error = matrix.add(2, 0).unwrap_err().to_string();
    assert!(error.contains("true 2") && error.contains("2 classes"), "{error}");
    assert!(ConfusionMatrix::from_pairs(["a", "b"], [(0, 5)]).is_err());
    assert_eq!(matrix.total(), 0, "a rejected pair is not counted");
}

#[test]
fn report_and_matrix_serialise_for_json() {
    let matrix = pets();
    let json = serde_json::to_value(matrix.report()).unwrap();
    assert_eq!(json["classes"][2]["class"], "bird");
    assert_eq!(json["classes"][2]["precision"], 0.0);
    assert_eq!(json["classes"][0]["support"], 4);
    assert_eq!(json["weighted avg"]["support"], 9);
    assert!(json["macro avg"]["f1-score"].is_f64());
    let json = serde_json::to_value(&matrix).unwrap();
    assert_eq!(json["classes"], serde_json::json!(["cat", "dog", "bird"]));
    assert_eq!(json["counts"], serde_json::json!([[3, 1, 0], [1, 2, 0], [1, 1, 0]]));
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn predictions_read_softmax_rows_and_sigmoid_outputs() {
    let emotions = names(&["angry", "happy", "sad"]);
    let p = Prediction::from_row(&[0.1, 0.7, 0.2], &emotions).unwrap();
    assert_eq!((p.index, p.label.as_str(), p.confidence), (1, "happy", 0.7));
    assert_eq!(p.probabilities, [("angry".into(), 0.1), ("happy".into(), 0.7), ("sad".into(), 0.2)]);

    let binary = names(&["happy", "sad"]);
    let p = Prediction::from_row(&[0.9], &binary).unwrap();
    assert_eq!((p.index, p.label.as_str(), p.confidence), (1, "sad", 0.9));
    // Exactly undecided: the lower index wins.
    let p = Prediction::from_row(&[0.5], &binary).unwrap();
    assert_eq!((p.index, p.confidence), (0, 0.5));
    let p = Prediction::from_row(&[0.4, 0.4, 0.2], &emotions).unwrap();
    assert_eq!(p.index, 0);
    // A two-output softmax model is read as rows too.
    let p = Prediction::from_row(&[0.2, 0.8], &binary).unwrap();
    assert_eq!((p.index, p.confidence), (1, 0.8));

    let batch = Prediction::from_batch(&[0.1, 0.7, 0.2, 0.6, 0.3, 0.1], 3, &emotions).unwrap();
    let labels: Vec<&str> = batch.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["happy", "angry"]);
    let sigmoid_batch = Prediction::from_batch(&[0.37, 0.8], 1, &binary).unwrap();
    assert_eq!(sigmoid_batch.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn predictions_reject_outputs_that_do_not_fit_the_classes() {
    let emotions = names(&["angry", "happy", "sad"]);
    let error = Prediction::from_row(&[0.5, 0.5], &emotions).unwrap_err().to_string();
    assert!(error.contains("2 values") && error.contains("3 class names"), "{error}");
    assert!(Prediction::from_row(&[0.5], &emotions).is_err(), "one sigmoid value needs exactly two classes");
    assert!(Prediction::from_row(&[1.0], &names(&["only"])).is_err());
    assert!(Prediction::from_row(&[], &names(&["a", "b"])).is_err());
    let error = Prediction::from_row(&[0.2, f32::NAN, 0.3], &emotions).unwrap_err().to_string();
    assert!(error.contains("NaN"), "{error}");
    let error = Prediction::from_batch(&[0.1; 5], 3, &emotions).unwrap_err().to_string();
    assert!(error.contains("5 model outputs"), "{error}");
    assert!(Prediction::from_batch(&[0.1; 3], 0, &emotions).is_err());
}

#[test]
fn prediction_json_lists_probabilities_in_class_order() {
    let p = Prediction::from_row(&[0.25], &names(&["sad", "happy"])).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#"{"index":0,"label":"sad","confidence":0.75,"probabilities":{"sad":0.75,"happy":0.25}}"#);
}

/// Where the plots go: `WGCNN_PLOT_DIR` (kept) or a fresh temporary folder (removed when dropped).
struct PlotDir {
    path: PathBuf,
    keep: bool,
}

impl PlotDir {
    fn new(test: &str) -> Self {
        let (path, keep) = match std::env::var_os("WGCNN_PLOT_DIR") {
            Some(dir) => (PathBuf::from(dir), true),
            None => (std::env::temp_dir().join(format!("wgcnn-report-{}-{test}", std::process::id())), false),
        };
        std::fs::create_dir_all(&path).unwrap();
        PlotDir { path, keep }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for PlotDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The PNG at `path` decodes, has `size`, is not one flat colour, and no temporary file is left
/// beside it.
fn check_png(path: &Path, size: (u32, u32)) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(image.dimensions(), size, "{}", path.display());
    let mut colours: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 10, "{} has only {} colours", path.display(), colours.len());
    // The temporary files of this plot (other tests may be writing theirs in a shared folder).
    let temp_prefix = format!(".{}.", path.file_name().unwrap().to_string_lossy());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&temp_prefix))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn history() -> History {
    let epochs = (1..=12)
        .map(|epoch| {
            let e = epoch as f64;
            EpochRecord {
                epoch,
                loss: 1.2 / e.sqrt(),
                accuracy: 1.0 - 0.6 / e.sqrt(),
                val_loss: Some(1.3 / e.sqrt() + 0.02 * e),
                val_accuracy: Some(0.9 - 0.55 / e.sqrt()),
                lr: if epoch <= 5 {
                    1e-3
                } else if epoch <= 9 {
                    2e-4
                } else {
                    4e-5
                },
                seconds: 10.0,
            }
        })
        .collect();
    History { epochs }
}

fn face(seed: u64, size: (u32, u32)) -> RgbImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let base: [u8; 3] = [rng.random(), rng.random(), rng.random()];
    RgbImage::from_fn(size.0, size.1, |x, y| {
        let shade = ((x + y) % 64) as u8;
        Rgb(base.map(|c| c.wrapping_add(shade)))
    })
}

/// The smallest font size a text may be set at and still be read.
const READABLE: f64 = 9.0;

/// Every text of `layout` in its room, its room in the picture, at a readable size; no two texts
/// overlapping; values over the data and every other text off it.
fn check_layout(layout: &Layout, what: &str) {
    let canvas = Rect::at(0, 0, layout.size.0 as i32, layout.size.1 as i32);
    for plot in &layout.plots {
        assert!(canvas.contains(plot), "{what}: plot {plot:?} leaves the {canvas:?} picture");
    }
    for text in &layout.texts {
        let name = format!("{what}: {:?} {:?}", text.kind, text.text);
        assert!(canvas.contains(&text.room), "{name}: its room {:?} leaves the picture {canvas:?}", text.room);
        assert!(text.room.contains(&text.bounds), "{name}: {:?} leaves its room {:?}", text.bounds, text.room);
        assert!(text.size >= READABLE, "{name}: set at {} pixels", text.size);
        let on_data = layout.plots.iter().filter(|plot| plot.overlaps(&text.bounds)).count();
        if text.kind == TextKind::Value {
            assert!(layout.plots.iter().any(|plot| plot.contains(&text.bounds)), "{name}: a value off the data");
        } else {
            assert_eq!(on_data, 0, "{name}: {:?} is over the data {:?}", text.bounds, layout.plots);
        }
    }
    for (i, a) in layout.texts.iter().enumerate() {
        for b in &layout.texts[i + 1..] {
            assert!(
                !a.bounds.overlaps(&b.bounds),
                "{what}: {:?} {:?} overlaps {:?} {:?}",
                a.text,
                a.bounds,
                b.text,
                b.bounds
            );
        }
    }
}

/// Nothing cut short: every text's lines hold all of its text.
fn check_whole(layout: &Layout, what: &str) {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    for text in &layout.texts {
        assert_eq!(squeeze(&text.lines.concat()), squeeze(&text.text), "{what}: {:?} is cut short", text.text);
    }
}

/// The picture at `path` drawn as laid out: its size, and in the room of every text off the data,
/// ink only inside the texts' measured bounds (so no glyph reaches past them, or out of the
/// picture), and some inside its own.
fn check_drawn(layout: &Layout, path: &Path, what: &str) {
    check_png(path, layout.size);
    let image = image::open(path).unwrap().to_rgb8();
    let inked = |x: i32, y: i32| image.get_pixel(x as u32, y as u32).0 != [255, 255, 255];
    for text in layout.texts.iter().filter(|text| text.kind != TextKind::Value) {
        let room = text.room;
        let pixels = (room.left..room.right).flat_map(|x| (room.top..room.bottom).map(move |y| (x, y)));
        for (x, y) in pixels.filter(|&(x, y)| inked(x, y)) {
            let dot = Rect::at(x, y, 1, 1);
            assert!(
                layout.texts.iter().any(|t| t.bounds.contains(&dot)),
                "{what}: ink at ({x}, {y}) in the room of {:?} outside {:?}",
                text.text,
                text.bounds
            );
        }
        let bounds = text.bounds;
        let ink = (bounds.left..bounds.right).flat_map(|x| (bounds.top..bounds.bottom).map(move |y| (x, y)));
        assert!(
            ink.clone().any(|(x, y)| inked(x, y)) || text.text.trim().is_empty(),
            "{what}: {:?} not drawn",
            text.text
        );
    }
}

/// `layout`'s picture, written to `path`, checked against it.
fn check_picture(layout: &Layout, path: &Path) {
    let what = path.display().to_string();
    check_layout(layout, &what);
    check_drawn(layout, path, &what);
}

/// The texts of `kind` in `layout`.
fn texts_of(layout: &Layout, kind: TextKind) -> Vec<&plots::PlacedText> {
    layout.texts.iter().filter(|t| t.kind == kind).collect()
}

fn faces(captions: &[(&str, Option<bool>)], files: impl Fn(usize) -> String, n: usize) -> Vec<GridItem> {
    (0..n)
        .map(|i| {
            let (caption, correct) = captions[i % captions.len()];
            let size = [(48, 48), (200, 120), (30, 90)][i % 3];
            GridItem { image: face(i as u64, size), file: files(i), caption: caption.into(), correct }
        })
        .collect()
}

#[test]
fn each_plot_writes_a_png_of_the_stated_size() {
    let dir = PlotDir::new("plots");
    let path = dir.file("training.png");
    plots::training_curves(&history(), &path).unwrap();
    let layout = plots::training_curves_layout(&history()).unwrap();
    assert_eq!(layout.size, plots::TRAINING_CURVES_SIZE);
    check_picture(&layout, &path);
    check_whole(&layout, "training curves");
    let legend: Vec<&str> = texts_of(&layout, TextKind::Legend).iter().map(|t| t.text.as_str()).collect();
    assert_eq!(legend, ["learning rate drop", "train", "validation"].repeat(2));

    let classes = names(&["angry", "happy", "sad"]);
    let path = dir.file("classes.png");
    let splits = [("train", vec![3995, 7215, 4830]), ("validation", vec![958, 1774, 1247])];
    plots::class_counts(&classes, &splits, &path).unwrap();
    let layout = plots::class_counts_layout(&classes, &splits).unwrap();
    assert_eq!(layout.size, plots::CLASS_COUNTS_SIZE);
    check_picture(&layout, &path);
    check_whole(&layout, "class counts");
    let values: Vec<&str> = texts_of(&layout, TextKind::Value).iter().map(|t| t.text.as_str()).collect();
    assert_eq!(values, ["3995", "7215", "4830", "958", "1774", "1247"]);

    let path = dir.file("confusion.png");
    plots::confusion_matrix(&pets(), "Confusion matrix: pets", &path).unwrap();
    let layout = plots::confusion_matrix_layout(&pets(), "Confusion matrix: pets").unwrap();
    let cells = 3 * plots::CONFUSION_CELL as i32;
    assert_eq!((layout.plots[0].width(), layout.plots[0].height()), (cells, cells));
    check_picture(&layout, &path);
    check_whole(&layout, "confusion matrix");
    assert_eq!(texts_of(&layout, TextKind::Title)[0].lines, ["Confusion matrix: pets"]);
    assert_eq!(texts_of(&layout, TextKind::Value).len(), 9);

    // 5 images: 3 columns, 2 rows; sizes and aspect ratios differ.
    let captions = [("happy 87%", Some(true)), ("sad 63%", Some(false)), ("angry 51%", None)];
    let items = faces(&captions, |i| format!("face_{i}.png"), 5);
    let path = dir.file("grid.png");
    plots::prediction_grid(&items, "5 faces predicted by a test", &path).unwrap();
    let tile = (plots::GRID_IMAGE + 2 * plots::GRID_PAD, plots::GRID_IMAGE + plots::GRID_CAPTION + 2 * plots::GRID_PAD);
    let layout = plots::prediction_grid_layout(&items, "5 faces predicted by a test").unwrap();
    assert_eq!(layout.size, (3 * tile.0, plots::GRID_LEGEND + 2 * tile.1));
    check_picture(&layout, &path);
    check_whole(&layout, "grid");
    // The second caption (wrong) is drawn in red somewhere under its image.
    let grid = image::open(&path).unwrap().to_rgb8();
    let strip_top = plots::GRID_LEGEND + plots::GRID_PAD + plots::GRID_IMAGE;
    let reddish = (tile.0..2 * tile.0)
        .flat_map(|x| (strip_top..strip_top + plots::GRID_CAPTION).map(move |y| (x, y)))
        .any(|(x, y)| matches!(grid.get_pixel(x, y).0, [r, g, b] if r > 150 && g < 80 && b < 80));
    assert!(reddish, "no red caption under the wrong prediction");

    let panels = [face(1, (256, 256)), face(2, (256, 256))];
    let path = dir.file("card.png");
    plots::explanation_card(&panels, |t| [(t * 255.0) as u8, 0, 0], "gradcam for happy (87.0%)", &path).unwrap();
    let layout = plots::explanation_card_layout(&panels, "gradcam for happy (87.0%)").unwrap();
    let width = plots::CARD_PAD + 2 * (256 + plots::CARD_PAD) + plots::CARD_SCALE;
    assert_eq!(layout.size, (width, plots::CARD_PAD + 256 + plots::CARD_CAPTION));
    check_picture(&layout, &path);
    check_whole(&layout, "card");
}

/// Class names of 40 characters and more, some with spaces, some with underscores.
fn long_classes(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("class_{i:02}_with_a_rather_long_descriptive_name")
            } else {
                format!("a long class name with spaces, number {i:02}")
            }
        })
        .collect()
}

const LONG_TITLE: &str = "Confusion matrix: a_very_long_data_folder_name_emotions3_test_official_split (1493 images)";

#[test]
fn long_titles_wrap_and_long_class_names_fit_on_every_picture() {
    let dir = PlotDir::new("long");
    let mut rng = StdRng::seed_from_u64(7);
    // 12 classes of 40 characters and more, and 3 of 100.
    let hundred = |c: &String| format!("{c} {c} {c}").chars().take(100).collect::<String>();
    let class_sets =
        [long_classes(1), long_classes(2), long_classes(12), long_classes(3).iter().map(hundred).collect()];
    for classes in class_sets {
        let n = classes.len();
        let pairs: Vec<(usize, usize)> = (0..1493).map(|_| (rng.random_range(0..n), rng.random_range(0..n))).collect();
        let matrix = ConfusionMatrix::from_pairs(classes.clone(), pairs).unwrap();
        let path = dir.file(&format!("confusion-{n}.png"));
        plots::confusion_matrix(&matrix, LONG_TITLE, &path).unwrap();
        let layout = plots::confusion_matrix_layout(&matrix, LONG_TITLE).unwrap();
        check_picture(&layout, &path);
        check_whole(&layout, &path.display().to_string());
        // Wider than the title with 12 classes; wrapped over fewer.
        let title = texts_of(&layout, TextKind::Title)[0];
        assert_eq!(title.lines.len() > 1, n < 12, "{:?}", title.lines);
        // Each class name twice, across and down, at least partly on the matrix' scale.
        assert_eq!(texts_of(&layout, TextKind::Tick).len(), 2 * n);
        let cells = n as i32 * plots::CONFUSION_CELL as i32;
        assert_eq!((layout.plots[0].width(), layout.plots[0].height()), (cells, cells));

        let counts = |scale: usize| (0..n).map(|c| scale * (c + 1)).collect::<Vec<_>>();
        let splits = [("train", counts(4321)), ("validation", counts(987)), ("official test split", counts(55))];
        let path = dir.file(&format!("classes-{n}.png"));
        plots::class_counts(&classes, &splits, &path).unwrap();
        let layout = plots::class_counts_layout(&classes, &splits).unwrap();
        assert!(layout.size.0 >= plots::CLASS_COUNTS_SIZE.0 && layout.size.1 >= plots::CLASS_COUNTS_SIZE.1);
        check_picture(&layout, &path);
        check_whole(&layout, &path.display().to_string());
    }

    // Legend entries too many for one row go onto more.
    let names: Vec<String> = (0..6).map(|i| format!("a long name for the split of the data number {i}")).collect();
    let splits: Vec<(&str, Vec<usize>)> = names.iter().map(|name| (name.as_str(), vec![10, 20])).collect();
    let path = dir.file("classes-many-splits.png");
    plots::class_counts(&long_classes(2), &splits, &path).unwrap();
    let layout = plots::class_counts_layout(&long_classes(2), &splits).unwrap();
    check_picture(&layout, &path);
    check_whole(&layout, "many splits");
    let mut rows: Vec<i32> = texts_of(&layout, TextKind::Legend).iter().map(|t| t.bounds.top).collect();
    rows.dedup();
    assert!(rows.len() > 1, "the legend on one row: {rows:?}");

    let captions: Vec<String> = long_classes(3).iter().map(|c| format!("{c} 87%")).collect();
    let captions: Vec<(&str, Option<bool>)> =
        captions.iter().zip([Some(true), Some(false), None]).map(|(c, r)| (c.as_str(), r)).collect();
    let file = |i: usize| format!("a_long_folder_of_faces/happy_face_number_{i:04}.png");
    for n in [1, 2, 7] {
        let items = faces(&captions, file, n);
        let title = format!(
            "{n} images predicted by runs/a_very_long_run_folder_name_fer48_v2_mirror_official/model.safetensors"
        );
        let path = dir.file(&format!("grid-{n}.png"));
        plots::prediction_grid(&items, &title, &path).unwrap();
        let layout = plots::prediction_grid_layout(&items, &title).unwrap();
        check_picture(&layout, &path);
        check_whole(&layout, &path.display().to_string());
    }

    // Small panels too: the colour scale keeps room for its labels.
    for side in [8, 256] {
        let panels = [face(1, (side, side)), face(2, (side, side))];
        let caption = format!("gradcam for {} (87.0%)", long_classes(1)[0]);
        let path = dir.file(&format!("card-{side}.png"));
        plots::explanation_card(&panels, |t| [0, (t * 255.0) as u8, 0], &caption, &path).unwrap();
        let layout = plots::explanation_card_layout(&panels, &caption).unwrap();
        check_picture(&layout, &path);
        check_whole(&layout, &path.display().to_string());
    }
}

#[test]
fn text_too_long_for_any_room_is_cut_short_inside_it() {
    let dir = PlotDir::new("too-long");
    let endless = "x".repeat(400);
    let spaced = ["word"; 120].join(" ");
    let matrix = ConfusionMatrix::from_pairs([endless.clone(), spaced.clone()], [(0, 0), (1, 0), (1, 1)]).unwrap();
    let title = format!("Confusion matrix: {spaced}");
    let path = dir.file("too-long-confusion.png");
    plots::confusion_matrix(&matrix, &title, &path).unwrap();
    let layout = plots::confusion_matrix_layout(&matrix, &title).unwrap();
    check_picture(&layout, &path);
    let cut: Vec<&str> = layout
        .texts
        .iter()
        .filter(|t| t.lines.last().is_some_and(|l| l.ends_with('…')))
        .map(|t| &t.text[..20])
        .collect();
    assert_eq!(cut.len(), 5, "the title and both names twice: {cut:?}");

    let splits = [("train", vec![1, 2])];
    let path = dir.file("too-long-classes.png");
    plots::class_counts(&[endless.clone(), spaced.clone()], &splits, &path).unwrap();
    check_picture(&plots::class_counts_layout(&[endless.clone(), spaced.clone()], &splits).unwrap(), &path);

    let items = faces(&[(spaced.as_str(), Some(false))], |_| endless.clone(), 2);
    let path = dir.file("too-long-grid.png");
    plots::prediction_grid(&items, &spaced, &path).unwrap();
    check_picture(&plots::prediction_grid_layout(&items, &spaced).unwrap(), &path);

    let panels = [face(1, (32, 32))];
    let path = dir.file("too-long-card.png");
    plots::explanation_card(&panels, |t| [0, 0, (t * 255.0) as u8], &endless, &path).unwrap();
    check_picture(&plots::explanation_card_layout(&panels, &endless).unwrap(), &path);
}

#[test]
fn a_history_without_validation_and_a_single_epoch_still_plots() {
    let dir = PlotDir::new("single");
    let mut history = history();
    history.epochs.truncate(1);
    history.epochs[0].val_loss = None;
    history.epochs[0].val_accuracy = None;
    let path = dir.file("training-one-epoch.png");
    plots::training_curves(&history, &path).unwrap();
    check_png(&path, plots::TRAINING_CURVES_SIZE);
    let error = plots::training_curves(&History::default(), dir.file("empty.png")).unwrap_err().to_string();
    assert!(error.contains("empty.png") && error.contains("no epoch"), "{error}");
}

#[test]
fn plots_into_a_missing_folder_or_with_bad_input_give_errors_naming_the_path() {
    let dir = PlotDir::new("errors");
    let missing = dir.file("no-such-folder").join("plot.png");
    let classes = names(&["a", "b"]);
    let item = GridItem { image: face(1, (8, 8)), file: "a.png".into(), caption: "a 90%".into(), correct: None };
    let errors = [
        plots::training_curves(&history(), &missing),
        plots::class_counts(&classes, &[("train", vec![1, 2])], &missing),
        plots::confusion_matrix(&pets(), "Confusion matrix: pets", &missing),
        plots::prediction_grid(&[item], "one face", &missing),
        plots::class_counts(&classes, &[("train", vec![1, 2, 3])], dir.file("bad.png")),
        plots::prediction_grid(&[], "nothing", dir.file("bad.png")),
    ];
    for (i, result) in errors.into_iter().enumerate() {
        let error = result.expect_err("an error").to_string();
        let named = if i < 4 { missing.display().to_string() } else { dir.file("bad.png").display().to_string() };
        assert!(error.contains(&named), "error {i} does not name {named}: {error}");
    }
    assert!(!missing.parent().unwrap().exists());
}
