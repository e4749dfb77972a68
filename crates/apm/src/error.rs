//! The one place page errors become HTTP statuses and error pages.

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use throughline_store::{StoreError, TraceId};

use crate::html::{self, Esc, Nav};
use crate::params::ParamError;

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    BadParam(#[from] ParamError),
    #[error("no trace {0} in the store")]
    TraceNotFound(TraceId),
    #[error("no such {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the page could not be rendered")]
    Internal,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, advice) = match &self {
            PageError::BadParam(_) => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "Fix the value in the address bar or the search form and try again.",
            ),
            PageError::TraceNotFound(_) => (
                StatusCode::NOT_FOUND,
                "Trace not found",
                "The trace may not have arrived yet, may have aged out of the store, or the id may \
                 be mistyped. Spans are searchable a moment after the collector receives them.",
            ),
            PageError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found", "Try the search page."),
            PageError::Store(StoreError::InvalidQuery(_)) => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The store refused this query.",
            ),
            PageError::Store(_) | PageError::Internal => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Store unavailable",
                "The trace store could not answer; see the collector's log.",
            ),
        };
        if matches!(status, StatusCode::SERVICE_UNAVAILABLE) {
            // Each cause once: the variants do not print their sources themselves.
            let mut causes = self.to_string();
            let mut cause = std::error::Error::source(&self);
            while let Some(c) = cause {
                let _ = write!(causes, ": {c}");
                cause = c.source();
            }
            tracing::warn!(error = %causes, "apm page failed");
        }
        // Store internals stay in the log; the page names only what the user can act on.
        let message = match &self {
            PageError::Store(StoreError::InvalidQuery(m)) => m.clone(),
            PageError::Store(_) => "the store could not be read".to_owned(),
            other => other.to_string(),
        };
        let mut body = String::new();
        let _ = write!(
            body,
            "<section class=\"error\"><h1>{} <span class=\"code\">{}</span></h1>\
<p class=\"what\" data-testid=\"error\">{}</p><p>{}</p><p><a href=\"/search\">Back to search</a></p></section>",
            title,
            status.as_u16(),
            Esc(&message),
            advice
        );
        (status, Html(html::page(title, Nav::None, &body))).into_response()
    }
}
