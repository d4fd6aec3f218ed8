//! The layer kinds, one module each: its parameters (the type its [`LayerSpec`] variant holds),
//! its token (written and read), its names, its shape inference and the op it lowers into. The one
//! list in [`layer_kinds!`] declares every kind's module and builds [`LayerSpec`], [`LayerKind`]
//! and the dispatch to each kind from it, so a kind is added by its module and its line there; the
//! tests walk [`LayerKind::ALL`] to check that each kind parses, prints back and runs on every
//! backend.

mod checks;

use super::cursor::Cursor;
use super::params::ParamInfo;
use crate::model::op::{Op, OpSite};

/// What one layer kind is: its definition, token, shape inference and op.
trait Kind {
    const DEFINITION: Definition;

    /// The layer's token in a spec string; `is_head` for the last layer. The prefix alone unless
    /// the kind has parameters.
    fn token(&self, _is_head: bool) -> String {
        Self::DEFINITION.prefix.into()
    }

    /// The per-sample output shape and the parameters (named `<name>.<role>`) for a per-sample
    /// `input` shape; the error is the reason.
    fn infer(&self, name: &str, input: &[usize], is_head: bool) -> Result<LayerOutput, String>;

    /// The op of the layer between its inferred per-sample `input` and `output` shapes, at `site`.
    fn op(&self, input: &[usize], output: &[usize], site: OpSite) -> Result<Op, String>;
}

/// A layer kind's token, names and role, as its module defines them.
pub(super) struct Definition {
    /// What its tokens start with: `c`, `drop`.
    pub prefix: &'static str,
    /// What follows the prefix.
    pub grammar: Grammar,
    /// The token's syntax as the docs write it: `d<units>[lin]`.
    pub syntax: &'static str,
    /// What the layer is, after its syntax in the docs: `dense`, `batch norm`.
    pub title: &'static str,
    /// Canonical tokens, each printed back as written.
    pub examples: &'static [&'static str],
    /// The first part of its Keras-like layer names: `conv` of `conv1`.
    pub name: &'static str,
    /// The Keras class, for the summary.
    pub keras_type: &'static str,
    /// Whether its output is a learned spatial feature map, what Grad-CAM weighs.
    pub learns_feature_maps: bool,
}

/// What follows a kind's prefix in its token.
pub(super) enum Grammar {
    /// Nothing: the token is the prefix alone (`bn`).
    Word(LayerSpec),
    /// Parameters read from what follows the prefix; None when they are not of the kind's form.
    Parameters(fn(&mut Cursor) -> Option<LayerSpec>),
}

/// What a kind's shape inference finds.
pub(super) struct LayerOutput {
    pub shape: Vec<usize>,
    pub params: Vec<ParamInfo>,
}

impl LayerOutput {
    /// The input's shape, no parameters.
    fn unchanged(input: &[usize]) -> LayerOutput {
        LayerOutput { shape: input.to_vec(), params: Vec::new() }
    }
}

/// Declares each kind's module and builds [`LayerSpec`], [`LayerKind`], [`LayerKind::ALL`] and
/// the dispatch to each kind's [`Kind`] from one list of `Type in module`.
macro_rules! layer_kinds {
    ($($kind:ident in $module:ident),* $(,)?) => {
        $(
            mod $module;
            pub use $module::$kind;
        )*

        /// One layer of a sequential model: a variant per kind, holding the kind's parameters.
        #[derive(Clone, Debug, PartialEq)]
        pub enum LayerSpec {
            $(
                #[doc = concat!("A [`", stringify!($kind), "`] layer.")]
                $kind($kind)
            ),*
        }

        /// What a [`LayerSpec`] is, without its parameters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum LayerKind {
            $($kind),*
        }

        impl LayerKind {
            /// Every kind, in the order the grammar lists them.
            pub const ALL: &'static [LayerKind] = &[$(LayerKind::$kind),*];

            pub(super) fn definition(self) -> &'static Definition {
                match self {
                    $(LayerKind::$kind => &<$kind as Kind>::DEFINITION),*
                }
            }
        }

        impl LayerSpec {
            pub fn kind(&self) -> LayerKind {
                match self {
                    $(LayerSpec::$kind(_) => LayerKind::$kind),*
                }
            }

            /// The layer's token in a spec string. The head is written without `lin`: the last
            /// layer is linear by definition.
            pub(super) fn token(&self, is_head: bool) -> String {
                match self {
                    $(LayerSpec::$kind(layer) => layer.token(is_head)),*
                }
            }

            /// The layer's output shape and parameters (named `<name>.<role>`) for a per-sample
            /// `input` shape; the error is the reason.
            pub(super) fn infer(&self, name: &str, input: &[usize], is_head: bool) -> Result<LayerOutput, String> {
                match self {
                    $(LayerSpec::$kind(layer) => layer.infer(name, input, is_head)),*
                }
            }

            /// The layer's op between its inferred per-sample shapes, at `site` of its plan.
            pub(crate) fn op(&self, input: &[usize], output: &[usize], site: OpSite) -> Result<Op, String> {
                match self {
                    $(LayerSpec::$kind(layer) => layer.op(input, output, site)),*
                }
            }
        }

        $(
            impl From<$kind> for LayerSpec {
                fn from(layer: $kind) -> LayerSpec {
                    LayerSpec::$kind(layer)
                }
            }
        )*
    };
}

layer_kinds!(
    Conv2d in conv2d,
    MaxPool2d in max_pool2d,
    BatchNorm in batch_norm,
    Relu in relu,
    Flatten in flatten,
    Dense in dense,
    Dropout in dropout,
);

impl LayerKind {
    /// The token's syntax as the docs write it: `d<units>[lin]`, `bn`.
    pub fn syntax(self) -> &'static str {
        self.definition().syntax
    }

    /// What the layer is, as the docs name it after its syntax: `dense`, `batch norm`.
    pub fn title(self) -> &'static str {
        self.definition().title
    }

    /// Canonical tokens of the kind, each printed back as written: `c32`, `c32x5s2same`.
    pub fn examples(self) -> &'static [&'static str] {
        self.definition().examples
    }

    /// The token's form as parse errors give it: `d<units>[lin], e.g. d128`; `bn (batch norm)`.
    pub fn form(self) -> String {
        let definition = self.definition();
        match definition.grammar {
            Grammar::Word(_) => format!("{} ({})", definition.syntax, definition.title),
            Grammar::Parameters(_) => format!("{}, e.g. {}", definition.syntax, definition.examples.join(" or ")),
        }
    }

    /// Whether its output is a learned spatial feature map, what Grad-CAM weighs: a convolution's.
    pub fn learns_feature_maps(self) -> bool {
        self.definition().learns_feature_maps
    }
}
