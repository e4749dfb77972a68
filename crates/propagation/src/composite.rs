//! `OTEL_PROPAGATORS`: the named propagators combined in the order given.

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};

use crate::{BaggagePropagator, TraceContextPropagator, XRayPropagator};

/// The environment variable [`Propagators::from_otel_propagators`] reads the value of.
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
/// The value used when `OTEL_PROPAGATORS` is unset or empty.
pub const DEFAULT_OTEL_PROPAGATORS: &str = "tracecontext,baggage";

/// One name `OTEL_PROPAGATORS` may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagatorName {
    /// `tracecontext`: [`TraceContextPropagator`].
    TraceContext,
    /// `baggage`: [`BaggagePropagator`].
    Baggage,
    /// `xray`: [`XRayPropagator`].
    XRay,
    /// `none`: no propagation at all (only valid alone).
    None,
}

impl PropagatorName {
    /// The name as written in `OTEL_PROPAGATORS`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TraceContext => "tracecontext",
            Self::Baggage => "baggage",
            Self::XRay => "xray",
            Self::None => "none",
        }
    }
}

/// An `OTEL_PROPAGATORS` value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropagatorsError {
    /// A name that is not one of `tracecontext`, `baggage`, `xray`, `none`.
    #[error(
        "OTEL_PROPAGATORS: {value:?} names {name:?}, which is not one of tracecontext, baggage, xray, none"
    )]
    Unknown {
        /// The whole value.
        value: String,
        /// The name not understood.
        name: String,
    },
    /// `none` combined with other names.
    #[error("OTEL_PROPAGATORS: {value:?} combines none with other propagators")]
    NoneCombined {
        /// The whole value.
        value: String,
    },
}

/// The propagators `OTEL_PROPAGATORS` names, combined in order; itself a [`TextMapPropagator`]
/// (inject runs each in order; extract folds the context through each in order).
#[derive(Debug)]
pub struct Propagators {
    names: Vec<PropagatorName>,
    composite: TextMapCompositePropagator,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the specification's default.
    fn default() -> Self {
        Self::from_names(&[PropagatorName::TraceContext, PropagatorName::Baggage])
    }
}

impl Propagators {
    /// Parses an `OTEL_PROPAGATORS` value: comma-separated names, spaces around them ignored,
    /// case-insensitive, a repeated name used once. Empty (or only commas and spaces) means the
    /// default `tracecontext,baggage`; `none` alone means no propagation. An unknown name, or
    /// `none` with others, is an error that names the variable and the value.
    pub fn from_otel_propagators(value: &str) -> Result<Self, PropagatorsError> {
        let mut names = Vec::new();
        for raw in value.split(',') {
            let name = raw.trim();
            if name.is_empty() {
                continue;
            }
            let parsed = match name.to_ascii_lowercase().as_str() {
                "tracecontext" => PropagatorName::TraceContext,
                "baggage" => PropagatorName::Baggage,
                "xray" => PropagatorName::XRay,
                "none" => PropagatorName::None,
                _ => {
                    return Err(PropagatorsError::Unknown {
                        value: value.to_owned(),
                        name: name.to_owned(),
                    });
                }
            };
            if !names.contains(&parsed) {
                names.push(parsed);
            }
        }
        if names.is_empty() {
            return Ok(Self::default());
        }
        if names.contains(&PropagatorName::None) && names.len() > 1 {
            return Err(PropagatorsError::NoneCombined {
                value: value.to_owned(),
            });
        }
        Ok(Self::from_names(&names))
    }

    /// The propagators for `names`, in order (`None` contributes nothing).
    pub fn from_names(names: &[PropagatorName]) -> Self {
        let propagators = names
            .iter()
            .filter_map(|name| -> Option<Box<dyn TextMapPropagator + Send + Sync>> {
                match name {
                    PropagatorName::TraceContext => Some(Box::new(TraceContextPropagator::new())),
                    PropagatorName::Baggage => Some(Box::new(BaggagePropagator::new())),
                    PropagatorName::XRay => Some(Box::new(XRayPropagator::new())),
                    PropagatorName::None => None,
                }
            })
            .collect();
        Self {
            names: names.to_vec(),
            composite: TextMapCompositePropagator::new(propagators),
        }
    }

    /// The names in effect, in order.
    pub fn names(&self) -> &[PropagatorName] {
        &self.names
    }

    /// Whether nothing is propagated (`none`).
    pub fn is_noop(&self) -> bool {
        self.names.iter().all(|name| *name == PropagatorName::None)
    }
}

impl TextMapPropagator for Propagators {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.composite.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.composite.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.composite.fields()
    }
}
