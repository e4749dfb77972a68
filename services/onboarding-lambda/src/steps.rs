//! The processing steps of seed 002, each a child span with business attributes, and the
//! resources they touch: the shared SQLite file, the document store, the outbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use serde::Deserialize;

use crate::config::{DocumentsLocation, WorkerConfig};
use crate::names;

/// One processing step. Failures can be injected per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Validation,
    Compliance,
    Audit,
    Documents,
    Status,
    Notification,
    FollowUp,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Validation,
        Step::Compliance,
        Step::Audit,
        Step::Documents,
        Step::Status,
        Step::Notification,
        Step::FollowUp,
    ];

    /// The name used in `ONBOARDING_FAILURES` and in `onboarding.step`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Validation => "validation",
            Step::Compliance => "compliance",
            Step::Audit => "audit",
            Step::Documents => "documents",
            Step::Status => "status",
            Step::Notification => "notification",
            Step::FollowUp => "followup",
        }
    }

    /// The span name of the step.
    fn span_name(self) -> &'static str {
        match self {
            Step::Validation => "validate and enrich customer",
            Step::Compliance => "compliance checks",
            Step::Audit => "INSERT audit_trail",
            Step::Documents => "store customer documents",
            Step::Status => "UPDATE customers",
            Step::Notification => "send welcome notification",
            Step::FollowUp => "trigger follow-up workflows",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == s)
    }

    pub fn names() -> String {
        Step::ALL.map(Step::name).join(", ")
    }
}

/// The message body the API sends.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerRecord {
    pub customer_id: String,
    /// Personal data: used for the notification, never put on a span or a log line.
    pub email: String,
    pub name: String,
    #[serde(rename = "type")]
    pub customer_type: String,
    pub request_id: String,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: injected failure")]
    Injected { step: &'static str },
    #[error("{step}: {message}")]
    Failed { step: &'static str, message: String },
}

impl StepError {
    pub fn step(&self) -> &'static str {
        match self {
            StepError::Injected { step } | StepError::Failed { step, .. } => step,
        }
    }
}

/// Why the worker's resources could not be opened at cold start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database {path}: {source}")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("document store: {0}")]
    Documents(#[from] object_store::Error),
    #[error("ONBOARDING_DOCUMENTS_URL names S3, but this build lacks the `s3` feature")]
    S3NotBuilt,
}

/// Risk figures from the validation step, carried to the status update.
#[derive(Debug, Clone, Copy)]
struct Risk {
    score: f64,
    level: &'static str,
}

/// Runs the steps for one record.
#[derive(Debug)]
pub struct Processor {
    pub(crate) tracer: BoxedTracer,
    db: Arc<Mutex<rusqlite::Connection>>,
    db_path: PathBuf,
    documents: Arc<dyn ObjectStore>,
    outbox: Arc<dyn ObjectStore>,
    failure_rates: HashMap<Step, f64>,
}

impl Processor {
    /// Opens the database, the document store and the outbox. Blocking (file system).
    pub fn open(config: &WorkerConfig, tracer: BoxedTracer) -> Result<Self, OpenError> {
        let db = open_database(&config.database_path)?;
        let documents: Arc<dyn ObjectStore> = match &config.documents {
            DocumentsLocation::Local(dir) => Arc::new(local_store(dir)?),
            DocumentsLocation::S3 { bucket, prefix } => s3_store(bucket, prefix)?,
        };
        let outbox: Arc<dyn ObjectStore> = Arc::new(local_store(&config.outbox_dir)?);
        Ok(Self {
            tracer,
            db: Arc::new(Mutex::new(db)),
            db_path: config.database_path.clone(),
            documents,
            outbox,
            failure_rates: config.failure_rates.clone(),
        })
    }

    /// Runs every step under `cx` (the record's CONSUMER span); stops at the first failure.
    pub async fn process(
        &self,
        cx: &Context,
        record: &CustomerRecord,
        attempt: i64,
    ) -> Result<(), StepError> {
        let risk = self
            .step(cx, Step::Validation, async { Ok(validate(record)) })
            .await?;
        cx.span()
            .set_attribute(KeyValue::new(names::RISK_SCORE, risk.score));
        self.step(cx, Step::Compliance, self.compliance(cx, record, risk))
            .await?;
        self.step(cx, Step::Audit, self.audit(record, attempt))
            .await?;
        self.step(cx, Step::Documents, self.store_documents(record, risk))
            .await?;
        self.step(
            cx,
            Step::Status,
            self.update_status(
                &record.customer_id,
                "completed",
                None,
                Some(risk.score),
                attempt,
            ),
        )
        .await?;
        self.step(cx, Step::Notification, self.notify(record))
            .await?;
        self.step(cx, Step::FollowUp, async {
            follow_up(record);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Records a failed attempt on the customer, best effort (the record will be redelivered).
    pub async fn mark_failed(&self, customer_id: &str, detail: &str, attempt: i64) {
        if let Err(e) = self
            .update_status(
                customer_id,
                "failed",
                Some(detail.to_owned()),
                None,
                attempt,
            )
            .await
        {
            tracing::warn!(error = %e, customer_id, "failed status could not be recorded");
        }
    }

    /// Runs one step in its own child span; an injected failure happens before the work.
    async fn step<T>(
        &self,
        cx: &Context,
        step: Step,
        work: impl Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let mut attributes = vec![KeyValue::new(names::STEP, step.name())];
        if matches!(step, Step::Audit | Step::Status) {
            let (op, table) = if step == Step::Audit {
                ("INSERT", "audit_trail")
            } else {
                ("UPDATE", "customers")
            };
            attributes.push(KeyValue::new(semconv::DB_SYSTEM_NAME, "sqlite"));
            attributes.push(KeyValue::new(semconv::DB_OPERATION_NAME, op));
            attributes.push(KeyValue::new(semconv::DB_COLLECTION_NAME, table));
        }
        let kind = if matches!(step, Step::Audit | Step::Status) {
            SpanKind::Client
        } else {
            SpanKind::Internal
        };
        let span = self
            .tracer
            .span_builder(step.span_name())
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, cx);
        let step_cx = cx.with_span(span);
        let rate = self.failure_rates.get(&step).copied().unwrap_or(0.0);
        let result = if rate > 0.0 && rand::random::<f64>() < rate {
            Err(StepError::Injected { step: step.name() })
        } else {
            work.with_context(step_cx.clone()).await
        };
        let span = step_cx.span();
        if let Err(e) = &result {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, step.name()));
            span.set_status(Status::error(e.to_string()));
        }
        span.end();
        result
    }

    async fn compliance(
        &self,
        cx: &Context,
        record: &CustomerRecord,
        risk: Risk,
    ) -> Result<(), StepError> {
        // KYC, AML, sanctions and PEP screening: each its own span under "compliance checks".
        let parent = Context::current();
        let parent = if parent.span().span_context().is_valid() {
            parent
        } else {
            cx.clone()
        };
        let enhanced = record.customer_type == "enterprise" || risk.level == "high";
        for check in ["kyc", "aml", "sanctions", "pep"] {
            let span = self
                .tracer
                .span_builder(format!("{check} check"))
                .with_kind(SpanKind::Internal)
                .with_attributes([
                    KeyValue::new(names::COMPLIANCE_CHECK, check),
                    KeyValue::new(names::COMPLIANCE_RESULT, "pass"),
                    KeyValue::new(names::COMPLIANCE_ENHANCED, enhanced),
                ])
                .start_with_context(&self.tracer, &parent);
            drop(span); // ends the span
        }
        parent
            .span()
            .set_attribute(KeyValue::new(names::COMPLIANCE_CHECKS, 4_i64));
        Ok(())
    }

    async fn audit(&self, record: &CustomerRecord, attempt: i64) -> Result<(), StepError> {
        let db = self.db.clone();
        let (id, req) = (record.customer_id.clone(), record.request_id.clone());
        let at = now_rfc3339();
        blocking(Step::Audit, move || {
            let conn = db.lock().unwrap_or_else(|p| p.into_inner());
            conn.execute(
                "INSERT INTO audit_trail (customer_id, request_id, event, attempt, at) VALUES (?1, ?2, 'onboarding_processed', ?3, ?4)",
                rusqlite::params![id, req, attempt, at],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .await
    }

    async fn store_documents(&self, record: &CustomerRecord, risk: Risk) -> Result<(), StepError> {
        let profile = serde_json::json!({
            "customer_id": record.customer_id,
            "name": record.name,
            "type": record.customer_type,
            "request_id": record.request_id,
            "risk_score": risk.score,
            "risk_level": risk.level,
            "stored_at": now_rfc3339(),
        });
        let bytes = bytes::Bytes::from(profile.to_string());
        let len = bytes.len() as i64;
        // One flat key per document kind: on local files a directory per customer would cost an
        // inode allocation per record, the most expensive thing the worker did.
        let path = ObjectPath::from(format!("profiles/{}.json", record.customer_id));
        self.documents
            .put(&path, bytes.into())
            .await
            .map_err(|e| StepError::Failed {
                step: Step::Documents.name(),
                message: e.to_string(),
            })?;
        let span = Context::current();
        span.span()
            .set_attribute(KeyValue::new(names::DOCUMENT_COUNT, 1_i64));
        span.span()
            .set_attribute(KeyValue::new(names::DOCUMENT_BYTES, len));
        Ok(())
    }

    async fn update_status(
        &self,
        customer_id: &str,
        status: &'static str,
        detail: Option<String>,
        risk_score: Option<f64>,
        attempt: i64,
    ) -> Result<(), StepError> {
        let db = self.db.clone();
        let id = customer_id.to_owned();
        let now = now_rfc3339();
        let path = self.db_path.clone();
        blocking(Step::Status, move || {
            let conn = db.lock().unwrap_or_else(|p| p.into_inner());
            let n = conn
                .execute(
                    "UPDATE customers SET status = ?1, status_detail = ?2, risk_score = COALESCE(?3, risk_score),
                            attempts = MAX(attempts, ?4), updated_at = ?5 WHERE customer_id = ?6",
                    rusqlite::params![status, detail, risk_score, attempt, now, id],
                )
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("no customer {id} in {}", path.display()));
            }
            Ok(())
        })
        .await
    }

    async fn notify(&self, record: &CustomerRecord) -> Result<(), StepError> {
        // The outbox stands in for SES: the email goes into the message, never onto the span.
        let message = serde_json::json!({
            "template": "welcome",
            "to": record.email,
            "customer_id": record.customer_id,
            "subject": format!("Welcome to throughline, {}", record.name),
            "queued_at": now_rfc3339(),
        });
        let path = ObjectPath::from(format!(
            "welcome-{}-{}.json",
            record.customer_id, record.request_id
        ));
        self.outbox
            .put(&path, bytes::Bytes::from(message.to_string()).into())
            .await
            .map_err(|e| StepError::Failed {
                step: Step::Notification.name(),
                message: e.to_string(),
            })?;
        let cx = Context::current();
        cx.span()
            .set_attribute(KeyValue::new(names::NOTIFICATION_CHANNEL, "email"));
        cx.span()
            .set_attribute(KeyValue::new(names::NOTIFICATION_TEMPLATE, "welcome"));
        Ok(())
    }
}

/// Validation and enrichment: a deterministic risk score from the customer id and type.
fn validate(record: &CustomerRecord) -> Risk {
    let hash = record
        .customer_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let base = (hash % 1000) as f64 / 10.0; // 0.0 ..= 99.9
    let score = match record.customer_type.as_str() {
        "enterprise" => base * 0.6,
        "premium" => base * 0.8,
        _ => base,
    };
    let level = if score >= 70.0 {
        "high"
    } else if score >= 35.0 {
        "medium"
    } else {
        "low"
    };
    let cx = Context::current();
    cx.span().set_attribute(KeyValue::new(
        names::CUSTOMER_TYPE,
        record.customer_type.clone(),
    ));
    cx.span()
        .set_attribute(KeyValue::new(names::RISK_SCORE, score));
    cx.span()
        .set_attribute(KeyValue::new(names::RISK_LEVEL, level));
    Risk { score, level }
}

fn follow_up(record: &CustomerRecord) {
    let mut workflows = vec!["customer_success", "education_campaign"];
    if record.customer_type != "standard" {
        workflows.push("compliance_monitoring");
    }
    let cx = Context::current();
    cx.span().set_attribute(KeyValue::new(
        names::FOLLOWUP_WORKFLOWS,
        workflows.len() as i64,
    ));
}

async fn blocking(
    step: Step,
    f: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), StepError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StepError::Failed {
            step: step.name(),
            message: e.to_string(),
        })?
        .map_err(|message| StepError::Failed {
            step: step.name(),
            message,
        })
}

fn open_database(path: &Path) -> Result<rusqlite::Connection, OpenError> {
    let db_err = |source| OpenError::Database {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let conn = rusqlite::Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS audit_trail (
            id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, request_id TEXT NOT NULL,
            event TEXT NOT NULL, attempt INTEGER NOT NULL, at TEXT NOT NULL)",
        [],
    )
    .map_err(db_err)?;
    Ok(conn)
}

fn local_store(dir: &Path) -> Result<object_store::local::LocalFileSystem, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    Ok(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
}

#[cfg(feature = "s3")]
fn s3_store(bucket: &str, prefix: &str) -> Result<Arc<dyn ObjectStore>, OpenError> {
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    if prefix.is_empty() {
        Ok(Arc::new(s3))
    } else {
        Ok(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)))
    }
}

#[cfg(not(feature = "s3"))]
fn s3_store(_bucket: &str, _prefix: &str) -> Result<Arc<dyn ObjectStore>, OpenError> {
    Err(OpenError::S3NotBuilt)
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        // Formatting the current UTC time as RFC 3339 cannot fail (the year is in range).
        .unwrap_or_default()
}
