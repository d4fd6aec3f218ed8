//! Image-folder datasets: the messy real folder `../shared/data/happy_sad`, a folder of broken and
//! odd files made at test time, the errors for bad folders, splits, augmentation, batches, and the
//! synthetic face generator.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use wgcnn::Error;
use wgcnn::data::augment::{Augment, PlanarShape, flip_horizontal};
use wgcnn::data::folder::{Dataset, ImageFolder, LoadOptions, LoadReport};
use wgcnn::data::image::{DecodeLimits, Fit, InputFormat, decode_and_resize};
use wgcnn::data::loader::ImageBatches;
use wgcnn::data::split::{SplitRatios, stratified_split};
use wgcnn::data::synth::{Emotion, FacePairing, FaceParams, face, write_dataset};
use wgcnn::train::BatchSource;

/// `../shared/data/<name>`; panics naming the path when it is absent (the test needs the real files).
fn shared_data(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(name);
    assert!(
        path.is_dir(),
        "this test needs the shared data folder {} (see ../shared/data/SOURCES.md); it is absent",
        path.display()
    );
    path
}

fn names(paths: &[PathBuf], root: &Path) -> Vec<String> {
    paths.iter().map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect()
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// A `width` x `height` RGB image, left half red, right half blue.
fn red_blue(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, _| {
        if x < width / 2 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) }
    }))
}

#[test]
fn happy_sad_loads_every_decodable_file_and_reports_duplicates_conflicts_and_extensions() {
    let root = shared_data("happy_sad");
    let format = InputFormat::rgb(64, 64);
    let (dataset, report) = ImageFolder::load(&root, &format, &LoadOptions::default()).unwrap();
    println!("{report}");
    assert_eq!(report.classes, ["happy", "sad"]);
    assert_eq!(report.found, 299, "149 happy + 150 sad files");
    assert!(report.skipped.is_empty(), "every file decodes: {:?}", report.skipped);
    // The placeholder in both classes is a label conflict: both copies left out.
    let conflicts: Vec<_> = report.conflicts().collect();
    assert_eq!(conflicts.len(), 1);
    let placeholder = "ADea4I4CgV4-hlxUOAdFjyNYonWRHO6Pu4jWXKk9BJScXws64-c-mo.jpg";
    assert_eq!(names(&conflicts[0].paths, &root), [format!("happy/{placeholder}"), format!("sad/{placeholder}")]);
    assert_eq!(report.conflicts_left_out, 2);
    // sad/image8.jpeg and sad/images21.jpg are one file twice: the first copy is kept.
    let same_class: Vec<_> = report.duplicates.iter().filter(|g| !g.is_conflict()).collect();
    assert_eq!(same_class.len(), 1);
    assert_eq!(names(&same_class[0].paths, &root), ["sad/image8.jpeg", "sad/images21.jpg"]);
    assert_eq!(report.duplicates_left_out, 1);
    // Five PNGs named .jpg and one JPEG named .png, all read by content.
    let mut mismatched: Vec<(String, ImageFormat)> = report
        .mismatched_extensions
        .iter()
        .map(|m| (m.path.strip_prefix(&root).unwrap().to_string_lossy().into_owned(), m.format))
        .collect();
    mismatched.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [
        ("happy/227-2271622_happy-people-business-team-celebrating-png.png".to_string(), ImageFormat::Jpeg),
        (format!("happy/{placeholder}"), ImageFormat::Png),
        ("happy/images18.jpg".into(), ImageFormat::Png),
        ("happy/images6.jpg".into(), ImageFormat::Png),
        ("sad/73705bd7debb66c2afc780a22c223804.jpg".into(), ImageFormat::Png),
        (format!("sad/{placeholder}"), ImageFormat::Png),
    ];
    assert_eq!(mismatched, expected);
    assert_eq!(report.used_per_class, [148, 148]);
    assert_eq!(report.used(), 299 - 2 - 1);
    assert_eq!(dataset.len(), 296);
    assert_eq!(dataset.images.len(), 296 * 3 * 64 * 64, "u8 at the input size, not the files' size");
    assert_eq!(dataset.class_counts(&(0..dataset.len()).collect::<Vec<_>>()), [148, 148]);
    let used = names(&dataset.paths, &root);
    assert!(used.contains(&"sad/image8.jpeg".into()) && used.contains(&"happy/images21.jpg".into()));
    assert!(!used.iter().any(|p| p.ends_with(placeholder) || p == "sad/images21.jpg"));
    let summary = report.to_string();
    for line in ["299 files found in 2 classes", "used: 296 (happy 148, sad 148)", "skipped: 0", "label conflict: "] {
        assert!(summary.contains(line), "the summary lacks {line:?}:\n{summary}");
    }
}

/// A folder with the bad and odd files of the issue, in class `a`, and good files of every
/// format in class `b`.
fn messy_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let write = |path: PathBuf, bytes: &[u8]| std::fs::write(path, bytes).unwrap();
    let jpeg = encode(&red_blue(40, 30), ImageFormat::Jpeg);
    write(a.join("empty.jpg"), b"");
    write(a.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]);
    write(a.join("text.png"), b"this is not a picture, whatever its name says\n");
    write(a.join("one.png"), &encode(&red_blue(1, 1), ImageFormat::Png));
    let sixteen = ImageBuffer::from_pixel(20, 20, Rgb([32768u16, 65535, 0]));
    write(a.join("sixteen.png"), &encode(&DynamicImage::ImageRgb16(sixteen), ImageFormat::Png));
    write(a.join(".hidden"), b"ignored");
    let gray = ImageBuffer::from_pixel(30, 30, Luma([200u8]));
    write(b.join("gray.png"), &encode(&DynamicImage::ImageLuma8(gray), ImageFormat::Png));
    let rgba = ImageBuffer::from_pixel(30, 30, Rgba([10u8, 20, 30, 0]));
    write(b.join("rgba.png"), &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png));
    write(b.join("photo.jpg"), &jpeg);
    for (name, format) in
        [("pic.bmp", ImageFormat::Bmp), ("pic.gif", ImageFormat::Gif), ("pic.webp", ImageFormat::WebP)]
    {
        write(b.join(name), &encode(&red_blue(24, 24), format));
    }
    dir
}

#[test]
fn bad_files_are_skipped_with_their_reasons_and_good_ones_load() {
    let dir = messy_folder();
    let format = InputFormat::rgb(8, 8);
    let (dataset, report) = ImageFolder::load(dir.path(), &format, &LoadOptions::default()).unwrap();
    println!("{report}");
    assert_eq!(report.found, 11, "the hidden file is not counted");
    let mut skipped: Vec<(String, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason.kind()))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("empty.jpg".into(), "empty"),
            ("one.png".into(), "too small"),
            ("text.png".into(), "not an image"),
            ("truncated.jpg".into(), "truncated")
        ]
    );
    assert_eq!(report.skipped_by_reason(), [("empty", 1), ("not an image", 1), ("too small", 1), ("truncated", 1)]);
    assert_eq!(report.used_per_class, [1, 6]);
    let loaded = names(&dataset.paths, dir.path());
    assert_eq!(
        loaded,
        ["a/sixteen.png", "b/gray.png", "b/photo.jpg", "b/pic.bmp", "b/pic.gif", "b/pic.webp", "b/rgba.png"]
    );
    let pixel = |i: usize, c: usize| dataset.image(i)[c * 64 + 27];
    assert_eq!([pixel(0, 0), pixel(0, 1), pixel(0, 2)], [128, 255, 0], "16-bit scaled to 8");
    assert_eq!([pixel(1, 0), pixel(1, 1), pixel(1, 2)], [200, 200, 200], "gray to RGB");
    assert_eq!([pixel(6, 0), pixel(6, 1), pixel(6, 2)], [10, 20, 30], "alpha dropped");
    // The 1x1 image is a policy, not a failure: it loads with no minimum size.
    let everything = LoadOptions { min_side: 1, ..LoadOptions::default() };
    let (_, report) = ImageFolder::load(dir.path(), &format, &everything).unwrap();
    assert_eq!(report.used_per_class, [2, 6]);
}

#[test]
fn exif_orientation_is_applied_and_fits_keep_the_aspect_ratio_when_asked() {
    // 40x20, left half red, then EXIF orientation 6 (rotate 90 degrees clockwise): the left
    // half becomes the top.
    let jpeg = encode(&red_blue(40, 20), ImageFormat::Jpeg);
    let mut tiff = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut rotated = vec![0xFF, 0xD8, 0xFF, 0xE1];
    rotated.extend_from_slice(&(tiff.len() as u16 + 2).to_be_bytes());
    rotated.extend_from_slice(&tiff);
    rotated.extend_from_slice(&jpeg[2..]);
    let tall = InputFormat::rgb(40, 20);
    let decoded = decode_and_resize(&rotated, &tall, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.original_size, (40, 20));
    let (red, blue) = (&decoded.pixels[..800], &decoded.pixels[1600..]);
    assert!(red[5 * 20 + 10] > 200 && blue[5 * 20 + 10] < 50, "the top is red");
    assert!(red[35 * 20 + 10] < 50 && blue[35 * 20 + 10] > 200, "the bottom is blue");

    // A 40x20 image into 10x10: a centre crop keeps the middle (half red, half blue), a pad
    // puts black bands above and below, a stretch fills everything.
    let wide = encode(&red_blue(40, 20), ImageFormat::Png);
    let at = |fit: Fit, x: usize, y: usize| {
        let format = InputFormat { channels: 1, size: (10, 10), fit };
        decode_and_resize(&wide, &format, &DecodeLimits::default()).unwrap().pixels[y * 10 + x]
    };
    assert_eq!(at(Fit::Pad, 5, 0), 0, "padded band");
    assert!(at(Fit::Pad, 1, 5) > 40 && at(Fit::Stretch, 5, 0) > 0);
    let (crop_left, stretch_left) = (at(Fit::CenterCrop, 0, 5), at(Fit::Stretch, 0, 5));
    assert_eq!(crop_left, stretch_left, "both begin red");
    assert_eq!(at(Fit::CenterCrop, 9, 5), at(Fit::Stretch, 9, 5), "both end blue");
}

#[test]
fn bad_folders_are_clear_errors() {
    let format = InputFormat::rgb(8, 8);
    let options = LoadOptions::default();
    let message = |dir: &Path| match ImageFolder::load(dir, &format, &options) {
        Err(e @ Error::Dataset { .. }) => e.to_string(),
        other => panic!("expected a dataset error for {}, got {other:?}", dir.display()),
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(message(&missing).contains("missing") && message(&missing).contains("cannot list it"));
    std::fs::create_dir_all(dir.path().join("only")).unwrap();
    std::fs::write(dir.path().join("only/x.png"), encode(&red_blue(20, 20), ImageFormat::Png)).unwrap();
    assert!(message(dir.path()).contains("at least 2, found 1 (only)"), "{}", message(dir.path()));
    std::fs::create_dir_all(dir.path().join("void")).unwrap();
    assert!(message(dir.path()).contains("class folder \"void\" holds no files"), "{}", message(dir.path()));
    std::fs::write(dir.path().join("void/bad.jpg"), b"").unwrap();
    let unusable = message(dir.path());
    assert!(unusable.contains("class \"void\" has no usable image") && unusable.contains("bad.jpg"), "{unusable}");
}

#[test]
fn splits_are_stratified_disjoint_and_reproducible() {
    let labels: Vec<u32> = (0..299).map(|i| u32::from(i >= 149)).collect();
    let split = stratified_split(&labels, SplitRatios::TUTORIAL, 3).unwrap();
    let mut all: Vec<usize> = split.parts().iter().flat_map(|(_, part)| part.iter().copied()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..299).collect::<Vec<_>>(), "every sample in exactly one split");
    assert_eq!(split.class_counts(&labels, 2), [vec![104, 105], vec![30, 30], vec![15, 15]]);
    assert_eq!(split, stratified_split(&labels, SplitRatios::TUTORIAL, 3).unwrap());
    assert_ne!(split, stratified_split(&labels, SplitRatios::TUTORIAL, 4).unwrap());
    let other = stratified_split(&labels, SplitRatios::EIGHTY_TEN_TEN, 3).unwrap();
    assert_eq!(other.class_counts(&labels, 2), [vec![119, 120], vec![15, 15], vec![15, 15]]);
    // A class of three still reaches every split.
    let small: Vec<u32> = vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    let split = stratified_split(&small, SplitRatios::EIGHTY_TEN_TEN, 0).unwrap();
    assert_eq!(split.class_counts(&small, 2), [vec![1, 8], vec![1, 1], vec![1, 1]]);
    let bad = SplitRatios { train: 0.7, validation: 0.2, test: 0.2 };
    assert!(stratified_split(&labels, bad, 0).is_err());
}

/// A dataset of `n` 3x5x7 images of distinct values, alternating labels.
fn small_dataset(n: usize) -> Dataset {
    let format = InputFormat::rgb(5, 7);
    Dataset {
        format,
        images: (0..n * format.sample_len()).map(|i| (i * 37 % 256) as u8).collect(),
        labels: (0..n).map(|i| (i % 2) as u32).collect(),
        class_names: vec!["x".into(), "y".into()],
        paths: (0..n).map(|i| PathBuf::from(format!("{i}.png"))).collect(),
    }
}

#[test]
fn augmentation_is_reproducible_per_seed_epoch_and_sample_and_flip_twice_is_the_identity() {
    let shape = PlanarShape { channels: 3, height: 5, width: 7 };
    let original: Vec<f32> = (0..105).map(|i| (i * 37 % 256) as f32 / 255.0).collect();
    let mut flipped = original.clone();
    flip_horizontal(&mut flipped, shape);
    assert_ne!(flipped, original);
    assert_eq!(flipped[0], original[6]);
    flip_horizontal(&mut flipped, shape);
    assert_eq!(flipped, original);

    let augment = Augment::moderate();
    let run = |seed: u64, epoch: usize, sample: usize| {
        let mut image = original.clone();
        augment.apply(&mut image, shape, &mut Augment::rng(seed, epoch, sample));
        image
    };
    assert_eq!(run(1, 2, 3), run(1, 2, 3));
    assert_ne!(run(1, 2, 3), run(1, 3, 3));
    assert_ne!(run(1, 2, 3), run(1, 2, 4));
    assert_ne!(run(1, 2, 3), run(2, 2, 3));
    assert!(run(1, 2, 3).iter().all(|v| (0.0..=1.0).contains(v)));
    // Off is the identity.
    let mut image = original.clone();
    Augment::default().apply(&mut image, shape, &mut Augment::rng(1, 2, 3));
    assert_eq!(image, original);
    assert!(Augment { zoom: 1.0, ..Augment::default() }.validate().is_err());
}

#[test]
fn image_batches_convert_u8_per_batch_and_augment_by_epoch() {
    let dataset = small_dataset(6);
    let plain = ImageBatches::new(&dataset, &[4, 1, 5]).unwrap();
    assert_eq!((plain.len(), plain.sample_len()), (3, 105));
    let (mut images, mut labels) = (vec![0.0; 2 * 105], vec![9; 2]);
    plain.fill(&[2, 0], 1, &mut images, &mut labels).unwrap();
    assert_eq!(labels, [1, 0]);
    assert_eq!(images[..105], wgcnn::data::image::to_f32_planar(dataset.image(5))[..]);
    assert!(plain.fill(&[3], 1, &mut images, &mut labels).is_err());
    assert!(ImageBatches::new(&dataset, &[6]).is_err());

    let augmented = ImageBatches::new(&dataset, &[4, 1, 5]).unwrap().with_augment(Augment::moderate(), 7).unwrap();
    let batch = |epoch: usize| {
        let mut images = vec![0.0; 3 * 105];
        augmented.fill(&[0, 1, 2], epoch, &mut images, &mut [0; 3]).unwrap();
        images
    };
    assert_eq!(batch(1), batch(1));
    assert_ne!(batch(1), batch(2));
}

#[test]
fn synthetic_faces_fit_at_every_size_from_the_smallest() {
    // Below ~50 px a tall face used to leave no room for its centre: a panic in `synth`.
    for size in wgcnn::data::synth::MIN_SIZE..=64 {
        for index in 0..300 {
            let params = FaceParams::for_sample(Emotion::Happy, size, 1, index).unwrap();
            if index % 50 == 0 {
                let (image, layout) = params.render();
                assert_eq!(image.dimensions(), (size, size));
                let (cy, ry) = (layout.face_center.1, layout.face_radii.1);
                assert!(cy - ry >= 0.0 && cy + ry <= size as f32, "size {size}, face {index}: {layout:?}");
            }
        }
    }
}

#[test]
fn synthetic_faces_repeat_per_seed_and_their_classes_differ_at_the_mouth() {
    let (first, layout) = face(Emotion::Happy, 96, 11, 4).unwrap();
    let (again, _) = face(Emotion::Happy, 96, 11, 4).unwrap();
    assert_eq!(first, again);
    assert_ne!(first, face(Emotion::Happy, 96, 12, 4).unwrap().0);
    assert!(layout.mouth_bend < 0.0, "a smile's corners are up");

    let happy = FaceParams::for_sample(Emotion::Happy, 96, 11, 4).unwrap();
    let (happy_image, happy_layout) = happy.render();
    let (sad_image, sad_layout) = happy.with_emotion(Emotion::Sad).render();
    let (angry_image, angry_layout) = happy.with_emotion(Emotion::Angry).render();
    assert!(sad_layout.mouth_bend > 0.0, "a sad mouth's corners are down");
    assert!(angry_layout.brow_drop > happy_layout.brow_drop.abs(), "angry brows slant in and down");
    let (mut inside, mut outside) = (0, 0);
    for (x, y, pixel) in happy_image.enumerate_pixels() {
        let differs = pixel != sad_image.get_pixel(x, y);
        if happy_layout.mouth.contains(x, y) || sad_layout.mouth.contains(x, y) {
            inside += usize::from(differs);
        } else {
            outside += usize::from(differs);
        }
    }
    assert_eq!(outside, 0, "happy and sad differ only at the mouth");
    assert!(inside > 20, "the mouths differ: {inside} pixels");
    assert_ne!(happy_image, angry_image);
    let box_size = |b: wgcnn::data::synth::PixelBox| (b.x1 - b.x0, b.y1 - b.y0);
    assert!(box_size(happy_layout.mouth).0 > 4 && box_size(happy_layout.mouth).1 > 2);

    // Written and read back like any dataset; the same seed writes the same bytes.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let written = write_dataset(one.path(), &Emotion::ALL, 5, 48, 2, FacePairing::Independent).unwrap();
    write_dataset(two.path(), &Emotion::ALL, 5, 48, 2, FacePairing::Independent).unwrap();
    assert_eq!(written.len(), 15);
    for path in &written {
        let twin = two.path().join(path.strip_prefix(one.path()).unwrap());
        assert_eq!(std::fs::read(path).unwrap(), std::fs::read(twin).unwrap());
    }
    assert!(
        write_dataset(one.path(), &[Emotion::Happy], 5, 48, 2, FacePairing::Independent).is_err(),
        "an existing class folder is kept"
    );
    // Paired: image i of every class is the first class's face i with the class's expression.
    let paired = tempfile::tempdir().unwrap();
    write_dataset(paired.path(), &[Emotion::Sad, Emotion::Happy], 3, 48, 2, FacePairing::Paired).unwrap();
    for i in 0..3 {
        let sad = FaceParams::for_sample(Emotion::Sad, 48, 2, i).unwrap();
        for (emotion, params) in [(Emotion::Sad, sad.clone()), (Emotion::Happy, sad.with_emotion(Emotion::Happy))] {
            let path = paired.path().join(emotion.name()).join(format!("{}_{i}.png", emotion.name()));
            assert_eq!(image::open(&path).unwrap().to_rgb8(), params.render().0, "{}", path.display());
        }
    }
    let (dataset, report) = ImageFolder::load(one.path(), &InputFormat::rgb(48, 48), &LoadOptions::default()).unwrap();
    assert_eq!(report.classes, ["angry", "happy", "sad"]);
    assert_eq!((report.used_per_class.clone(), report.skipped.len()), (vec![5, 5, 5], 0));
    let first_happy = dataset.paths.iter().position(|p| p.ends_with("happy/happy_0.png")).unwrap();
    let (expected, _) = face(Emotion::Happy, 48, 2, 0).unwrap();
    assert_eq!(dataset.image(first_happy)[..48 * 48], expected.pixels().map(|p| p[0]).collect::<Vec<_>>()[..]);
    assert!("happy,joy".parse::<Emotion>().is_err() && Emotion::parse_list("happy,joy").is_err());
    assert_eq!(Emotion::parse_list("sad,angry").unwrap(), [Emotion::Sad, Emotion::Angry]);
}

#[test]
fn the_report_is_a_readable_summary() {
    let dir = messy_folder();
    let (_, report): (_, LoadReport) =
        ImageFolder::load(dir.path(), &InputFormat::rgb(8, 8), &LoadOptions::default()).unwrap();
    let text = report.to_string();
    for line in [
        "11 files found in 2 classes",
        "used: 7 (a 1, b 6)",
        "skipped: 4 (empty 1, not an image 1, too small 1, truncated 1)",
        "a/truncated.jpg: truncated JPEG",
    ] {
        assert!(text.contains(line), "the summary lacks {line:?}:\n{text}");
    }
}

#[test]
fn training_on_augmented_image_batches_repeats_bit_for_bit() {
    use wgcnn::model::spec::{Architecture, InputShape};
    use wgcnn::model::{TrainOptions, Trainable};
    use wgcnn::reference::ReferenceModel;
    use wgcnn::train::fit::{FitConfig, fit};

    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &[Emotion::Happy, Emotion::Sad], 12, 32, 5, FacePairing::Independent).unwrap();
    let format = InputFormat::rgb(16, 16);
    let (dataset, _) = ImageFolder::load(dir.path(), &format, &LoadOptions::default()).unwrap();
    let split = stratified_split(&dataset.labels, SplitRatios::TUTORIAL, 5).unwrap();
    let train = ImageBatches::new(&dataset, &split.train).unwrap().with_augment(Augment::moderate(), 5).unwrap();
    let validation = ImageBatches::new(&dataset, &split.validation).unwrap();
    let arch = Architecture::parse("c4-p-f-d1", InputShape { channels: 3, height: 16, width: 16 }).unwrap();
    let run = || {
        let mut model =
            ReferenceModel::new(&arch, 4, &arch.initial_weights(3).unwrap(), &TrainOptions::default()).unwrap();
        let config = FitConfig { epochs: 2, seed: 9, ..FitConfig::default() };
        let outcome = fit(&mut model, &train, Some(&validation as &dyn BatchSource), &config).unwrap();
        let per_epoch = split.train.len() / 4 + split.validation.len().div_ceil(4);
        assert_eq!(outcome.batches.batches, 2 * per_epoch, "{:?}", outcome.batches);
        model.weights().unwrap()
    };
    assert_eq!(run(), run(), "the same seeds give the same weights, whatever the prefetch thread's timing");
}
