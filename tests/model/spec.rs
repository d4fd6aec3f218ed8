//! Architectures as data: parsing and printing spec strings, shape inference, parameter counts,
//! the errors of layers that do not fit, Keras's initialisers and the summary table.

use std::collections::HashSet;

use wgcnn::model::spec::{
    Architecture, Conv2d, Dense, Dropout, Flatten, Init, InputShape, LayerKind, LayerSpec, MaxPool2d,
};
use wgcnn::shape::Padding;
use wgcnn::workflow::preset::Preset;

fn parse(spec: &str, input: InputShape) -> Architecture {
    Architecture::parse(spec, input).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// The error of parsing `spec` at `input`, which must fail.
#[track_caller]
fn parse_error(spec: &str, input: InputShape) -> String {
    match Architecture::parse(spec, input) {
        Ok(architecture) => panic!("{spec} at {input} parsed: {architecture:?}"),
        Err(e) => e.to_string(),
    }
}

/// The error of `architecture.layers_info()`, which must fail.
#[track_caller]
fn layers_error(architecture: &Architecture) -> String {
    match architecture.layers_info() {
        Ok(_) => panic!("{architecture} at {} is valid", architecture.input),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not mention {part:?}");
    }
}

fn total_params(architecture: &Architecture) -> usize {
    architecture.params().unwrap().iter().map(|p| p.elements()).sum()
}

/// Parameters of a square-kernel convolution and of a dense layer, as Keras counts them.
fn conv_params(in_channels: usize, filters: usize, kernel: usize) -> usize {
    in_channels * filters * kernel * kernel + filters
}
fn dense_params(inputs: usize, units: usize) -> usize {
    inputs * units + units
}

#[test]
fn happy_sad_preset_matches_the_keras_model() {
    let architecture = Preset::named("happy-sad").unwrap().architecture;
    assert_eq!(architecture.input, InputShape::new(3, 256, 256));
    assert_eq!(architecture.to_string(), "c16-p-c32-p-c64-p-c32-p-f-d256-d1");
    let layers = architecture.layers_info().unwrap();
    let shapes: Vec<(&str, &[usize])> = layers.iter().map(|l| (l.name.as_str(), l.output.as_slice())).collect();
    assert_eq!(
        shapes,
        [
            ("conv1", &[16, 254, 254][..]),
            ("pool1", &[16, 127, 127]),
            ("conv2", &[32, 125, 125]),
            ("pool2", &[32, 62, 62]),
            ("conv3", &[64, 60, 60]),
            ("pool3", &[64, 30, 30]),
            ("conv4", &[32, 28, 28]),
            ("pool4", &[32, 14, 14]),
            ("flatten1", &[6272]),
            ("dense1", &[256]),
            ("dense2", &[1]),
        ]
    );
    for pair in layers.windows(2) {
        assert_eq!(pair[0].output, pair[1].input, "{} feeds {}", pair[0].name, pair[1].name);
    }
    assert_eq!(total_params(&architecture), 1_648_193);
    assert!(architecture.params().unwrap().iter().all(|p| p.trainable));
    assert_eq!((architecture.outputs(), architecture.classes()), (1, 2));
    assert_eq!(layers[10].spec, LayerSpec::Dense(Dense { units: 1, relu: false }));
    assert_eq!(layers[9].spec, LayerSpec::Dense(Dense { units: 256, relu: true }));
}

#[test]
fn emotions3_preset_matches_the_keras_model() {
    let architecture = Preset::named("emotions3").unwrap().architecture;
    assert_eq!(architecture.input, InputShape::new(3, 128, 128));
    let layers = architecture.layers_info().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "flatten1", "dense1", "dropout1", "dense2"]
    );
    assert_eq!(layers[6].output, [128 * 14 * 14]);
    assert_eq!(layers[8].spec, LayerSpec::Dropout(Dropout { rate: 0.5 }));
    assert_eq!(total_params(&architecture), 3_305_027);
    assert_eq!((architecture.outputs(), architecture.classes()), (3, 3));
    let params: Vec<(String, Vec<usize>)> =
        architecture.params().unwrap().into_iter().map(|p| (p.name, p.shape)).collect();
    assert_eq!(params[0], ("conv1.weight".to_string(), vec![32, 3, 3, 3]));
    assert_eq!(params[1], ("conv1.bias".to_string(), vec![32]));
    assert_eq!(params[6], ("dense1.weight".to_string(), vec![25088, 128]));
    assert_eq!(params[9], ("dense2.bias".to_string(), vec![3]));
}

#[test]
fn emotions3_runs_on_48x48_grayscale() {
    let architecture = Preset::named("emotions3").unwrap().architecture.with_input(InputShape::new(1, 48, 48));
    let layers = architecture.layers_info().unwrap();
    // 48 -conv-> 46 -pool-> 23 -conv-> 21 -pool-> 10 -conv-> 8 -pool-> 4.
    assert_eq!(layers[5].output, [128, 4, 4]);
    assert_eq!(layers[6].output, [2048]);
    let expected = conv_params(1, 32, 3)
        + conv_params(32, 64, 3)
        + conv_params(64, 128, 3)
        + dense_params(128 * 4 * 4, 128)
        + dense_params(128, 3);
    assert_eq!(total_params(&architecture), expected);
}

#[test]
fn every_preset_resolves_and_unknown_ones_are_listed() {
    for name in Preset::names() {
        Preset::named(name).unwrap().architecture.layers_info().unwrap();
    }
    assert_mentions(&Preset::named("cats").unwrap_err().to_string(), &["cats", "happy-sad", "emotions3"]);
}

#[test]
fn spec_strings_round_trip_and_non_canonical_ones_are_normalised() {
    let input = InputShape::new(3, 64, 64);
    let mut kinds = HashSet::new();
    for spec in [
        "c16-p-c32-p-c64-p-c32-p-f-d256-d1",
        "c32x5s2same-bn-r-p3s2-c8lin-p3-f-d64lin-bn-drop0.25-d10",
        "c8x1-drop0.5-p4s1-f-d2",
        "f-drop0-d1",
    ] {
        let parsed = parse(spec, input);
        assert_eq!(parsed.to_string(), spec);
        kinds.extend(parsed.layers.iter().map(LayerSpec::kind));
    }
    for kind in LayerKind::ALL {
        assert!(kinds.contains(kind), "no round trip has a {kind:?} layer");
    }
    assert_eq!(parse("c16x3s1-p2s2-f-d8-d2lin", input).to_string(), "c16-p-f-d8-d2");
    let parsed = parse("c32x5s2same-p3-c4lin-f-d7lin-d1", input);
    assert_eq!(
        parsed.layers,
        [
            LayerSpec::Conv2d(Conv2d { filters: 32, kernel: 5, stride: 2, padding: Padding::Same, relu: true }),
            LayerSpec::MaxPool2d(MaxPool2d { pool: 3, stride: 3 }),
            LayerSpec::Conv2d(Conv2d { filters: 4, kernel: 3, stride: 1, padding: Padding::Valid, relu: false }),
            LayerSpec::Flatten(Flatten),
            LayerSpec::Dense(Dense { units: 7, relu: false }),
            LayerSpec::Dense(Dense { units: 1, relu: false }),
        ]
    );
    // Same padding keeps ceil(size / stride).
    assert_eq!(parsed.layers_info().unwrap()[0].output, [32, 32, 32]);
}

#[test]
fn every_layer_kind_parses_its_example_tokens_and_prints_them_back() {
    let unknown = parse_error("q-d1", InputShape::new(1, 8, 8));
    for &kind in LayerKind::ALL {
        assert!(!kind.examples().is_empty(), "{kind:?} has no example token");
        for &example in kind.examples() {
            let layer: LayerSpec = example.parse().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!((layer.kind(), layer.to_string()), (kind, example.to_string()));
        }
        assert_mentions(&unknown, &[&kind.form()]);
    }
    assert_mentions(&"c16x".parse::<LayerSpec>().unwrap_err().to_string(), &["\"c16x\"", "c<filters>"]);
}

#[test]
fn the_readme_and_the_spec_docs_give_every_layer_kinds_token() {
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = one_line(include_str!("../../README.md"));
    let spec_docs = one_line(include_str!("../../src/model/spec/mod.rs"));
    for &kind in LayerKind::ALL {
        assert_mentions(&readme, &[&format!("`{}` {}", kind.syntax(), kind.title())]);
        assert_mentions(&spec_docs, &[&format!("`{}`", kind.syntax())]);
    }
}

#[test]
fn input_shapes_parse_and_print() {
    let shape: InputShape = "1x48x40".parse().unwrap();
    assert_eq!(shape, InputShape::new(1, 48, 40));
    assert_eq!(shape.to_string(), "1x48x40");
    assert_eq!(shape.elements(), 48 * 40);
    for bad in ["3x256", "3x256x256x1", "axbxc", ""] {
        assert_mentions(&bad.parse::<InputShape>().unwrap_err().to_string(), &[&format!("{bad:?}"), "CxHxW"]);
    }
}

#[test]
fn bad_tokens_name_the_token_its_position_and_the_form_expected() {
    let input = InputShape::new(3, 32, 32);
    let cases: [(&str, &[&str]); 9] = [
        ("c16-q-f-d1", &["token 2", "\"q\"", "expected a layer"]),
        ("c16x-f-d1", &["token 1", "\"c16x\"", "c<filters>"]),
        ("c-f-d1", &["token 1", "c<filters>"]),
        ("c16s-f-d1", &["token 1", "c<filters>"]),
        ("c16-pq-f-d1", &["token 2", "\"pq\"", "p[<size>"]),
        ("f-dx-d1", &["token 2", "d<units>"]),
        ("f-drop-d1", &["token 2", "drop<rate>"]),
        ("f-d4-drop0.5x-d1", &["token 3", "drop<rate>"]),
        ("c16same3-f-d1", &["token 1", "\"3\""]),
    ];
    for (spec, parts) in cases {
        assert_mentions(&parse_error(spec, input), parts);
    }
    assert_mentions(&parse_error("", input), &["token 1", "expected a layer"]);
    assert_mentions(&parse_error("c16--f-d1", input), &["token 2"]);
}

#[test]
fn layers_that_do_not_fit_are_named_with_the_reason() {
    let small = InputShape::new(1, 3, 3);
    let input = InputShape::new(3, 32, 32);
    let cases: [(&str, InputShape, &[&str]); 14] = [
        ("c16x5-f-d1", small, &["conv1", "5x5", "3x3"]),
        ("c4-p4-f-d1", InputShape::new(1, 5, 5), &["pool1", "4x4", "3x3"]),
        ("c16-d1", input, &["dense1 (`d1`)", "expects a flat input: add `f` before it", "16x30x30"]),
        ("f-c8-f-d1", input, &["conv1", "flat"]),
        ("f-p-d1", input, &["pool1", "flat"]),
        ("f-f-d1", input, &["flatten2", "already flat"]),
        ("c8-f", input, &["last layer", "`f`"]),
        ("c0-f-d1", input, &["conv1", "positive"]),
        ("c8x0-f-d1", input, &["conv1", "positive"]),
        ("p0-f-d1", input, &["pool1", "positive"]),
        ("f-d0-d1", input, &["dense1", "positive"]),
        ("f-drop1-d1", input, &["dropout1", "[0, 1)"]),
        ("c100000x100000same-f-d1", input, &["conv1", "2^32"]),
        ("c8x18446744073709551615same-f-d1", input, &["conv1", "2^32"]),
    ];
    for (spec, input, parts) in cases {
        assert_mentions(&parse_error(spec, input), parts);
    }
    assert_mentions(&parse_error("f-d1", InputShape::new(0, 48, 48)), &["input", "positive"]);
    assert_mentions(&parse_error("f-d0", input), &["dense1", "positive"]);
}

#[test]
fn invalid_architectures_built_as_data_are_reported_not_panicked_on() {
    let input = InputShape::new(1, 8, 8);
    let with = |layers: Vec<LayerSpec>| Architecture { input, layers };
    assert_mentions(&layers_error(&with(vec![])), &["no layers"]);
    assert_mentions(
        &layers_error(&with(vec![LayerSpec::Flatten(Flatten), LayerSpec::Dense(Dense { units: 2, relu: true })])),
        &["dense1", "output head"],
    );
    for rate in [-0.1, 1.0, f32::NAN] {
        let layers = vec![
            LayerSpec::Flatten(Flatten),
            LayerSpec::Dropout(Dropout { rate }),
            LayerSpec::Dense(Dense { units: 2, relu: false }),
        ];
        assert_mentions(&layers_error(&with(layers)), &["dropout1", "[0, 1)"]);
    }
    let too_small = Preset::named("happy-sad").unwrap().architecture.with_input(InputShape::new(3, 16, 16));
    assert_mentions(&layers_error(&too_small), &["conv3"]);
    assert_eq!(with(vec![LayerSpec::Flatten(Flatten)]).outputs(), 0);
}

#[test]
fn batch_norm_covers_channels_or_features_and_keeps_running_statistics_frozen() {
    let architecture = parse("c8-bn-f-d4-bn-d2", InputShape::new(1, 6, 6));
    let params: Vec<(String, Vec<usize>, bool)> =
        architecture.params().unwrap().into_iter().map(|p| (p.name, p.shape, p.trainable)).collect();
    let bn = |layer: &str, n: usize| {
        ["gamma", "beta", "running_mean", "running_var"]
            .map(|role| (format!("{layer}.{role}"), vec![n], !role.starts_with("running")))
    };
    assert_eq!(params[2..6], bn("bn1", 8));
    assert_eq!(params[8..12], bn("bn2", 4));
    let weights = architecture.initial_weights(1).unwrap();
    let by_name = |name: &str| &weights.iter().find(|t| t.name == name).unwrap().data;
    for (name, value) in [
        ("bn1.gamma", 1.0),
        ("bn1.beta", 0.0),
        ("bn1.running_mean", 0.0),
        ("bn1.running_var", 1.0),
        ("bn2.gamma", 1.0),
        ("bn2.running_var", 1.0),
    ] {
        assert!(by_name(name).iter().all(|&v| v == value), "{name} starts at {value}");
    }
}

#[test]
fn initial_weights_are_glorot_uniform_with_zero_biases_and_deterministic() {
    let architecture = Preset::named("emotions3").unwrap().architecture.with_input(InputShape::new(1, 48, 48));
    let params = architecture.params().unwrap();
    let weights = architecture.initial_weights(42).unwrap();
    assert_eq!(weights.len(), params.len());
    for (param, tensor) in params.iter().zip(&weights) {
        assert_eq!((&tensor.name, &tensor.shape), (&param.name, &param.shape));
        assert_eq!(tensor.data.len(), param.elements());
        if tensor.name.ends_with(".bias") {
            assert!(tensor.data.iter().all(|&v| v == 0.0), "{} is zero", tensor.name);
            continue;
        }
        // Keras: fan_in = inputs x receptive field, fan_out = outputs x receptive field.
        let (fan_in, fan_out) = match tensor.shape[..] {
            [out, input, kh, kw] => (input * kh * kw, out * kh * kw),
            [input, out] => (input, out),
            _ => panic!("unexpected weight shape {:?}", tensor.shape),
        };
        assert_eq!(param.init, Init::GlorotUniform { fan_in, fan_out });
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
        let largest = tensor.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(largest <= limit, "{}: {largest} beyond {limit}", tensor.name);
        // Uniform over [-limit, limit): the extremes are reached and the mean is near 0.
        if tensor.data.len() >= 1000 {
            let mean = tensor.data.iter().map(|&v| v as f64).sum::<f64>() / tensor.data.len() as f64;
            assert!(largest > 0.95 * limit, "{}: largest {largest} of limit {limit}", tensor.name);
            assert!(mean.abs() < 0.05 * limit as f64, "{}: mean {mean}", tensor.name);
        }
    }
    assert_eq!(architecture.initial_weights(42).unwrap(), weights);
    assert_ne!(architecture.initial_weights(43).unwrap()[0].data, weights[0].data);
}

#[test]
fn summary_lists_layers_and_totals_like_keras() {
    let summary = Preset::named("happy-sad").unwrap().architecture.summary().unwrap();
    assert_mentions(
        &summary,
        &[
            "Layer (type)",
            "Output Shape",
            "Param #",
            "conv1 (Conv2D)",
            "(None, 16, 254, 254)",
            "pool4 (MaxPooling2D)",
            "flatten1 (Flatten)",
            "(None, 6272)",
            "dense1 (Dense)",
            "1,605,888",
            "Total params: 1,648,193",
            "Trainable params: 1,648,193",
            "Non-trainable params: 0",
        ],
    );
    let with_bn = parse("c8-bn-f-d2", InputShape::new(1, 6, 6)).summary().unwrap();
    let trainable = conv_params(1, 8, 3) + 2 * 8 + dense_params(8 * 4 * 4, 2);
    assert_mentions(
        &with_bn,
        &[
            "bn1 (BatchNormalization)",
            &format!("Total params: {}", trainable + 16),
            &format!("Trainable params: {trainable}"),
            "Non-trainable params: 16",
        ],
    );
}
