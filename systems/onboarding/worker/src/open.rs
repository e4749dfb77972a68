//! Why the worker's resources (database, document store, outbox) could not be opened at cold
//! start.

use std::path::PathBuf;

use crate::outbox::OutboxError;

/// Why the worker's resources could not be opened at cold start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database {path}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// PostgreSQL could not be reached, or refused us; `url` has its password redacted.
    #[error("DATABASE_URL {url}: cannot open the database")]
    Connect { url: String, source: sqlx::Error },
    /// No connection within `DATABASE_CONNECT_TIMEOUT_MS` (nothing listening, or no answer).
    #[error("DATABASE_URL {url}: cannot open the database: no connection within {timeout_ms} ms")]
    ConnectTimeout { url: String, timeout_ms: u64 },
    #[error("directory {path}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("document store")]
    Documents(#[from] object_store::Error),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The S3 client could not be built from the `AWS_*` settings; `message` has every secret
    /// value masked.
    #[error("ONBOARDING_DOCUMENTS_URL s3://{bucket}: cannot build the S3 client: {message}")]
    S3 { bucket: String, message: String },
    #[error("ONBOARDING_DOCUMENTS_URL names S3, but this build lacks the `s3` feature")]
    S3NotBuilt,
}

impl From<throughline_service_kit::objects::ObjectStoreError> for OpenError {
    fn from(e: throughline_service_kit::objects::ObjectStoreError) -> Self {
        use throughline_service_kit::objects::ObjectStoreError as E;
        match e {
            E::Directory { path, source } => Self::Directory { path, source },
            E::Local(e) => Self::Documents(e),
            E::S3 { bucket, message } => Self::S3 { bucket, message },
            E::S3NotBuilt => Self::S3NotBuilt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_reads_each_cause_once() {
        let errors = [
            OpenError::Directory {
                path: PathBuf::from("/data/docs"),
                source: std::io::Error::other("disk on fire"),
            },
            OpenError::Outbox(OutboxError {
                path: PathBuf::from("/data/outbox"),
                source: std::io::Error::other("disk on fire"),
            }),
            OpenError::Connect {
                url: "postgres://app:***@db/shop".to_owned(),
                source: sqlx::Error::Protocol("disk on fire".to_owned()),
            },
        ];
        for e in &errors {
            let chain = throughline_service_kit::ErrorChain(e).to_string();
            assert_eq!(chain.matches("disk on fire").count(), 1, "{chain}");
        }
    }
}
