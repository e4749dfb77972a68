//! The processing steps of seed 002, each a child span with business attributes (through
//! `throughline-instrument`: a database step is the database's CLIENT span), and the resources
//! they touch: the shared database (see [`crate::database`]), the document store, the outbox.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use serde::Deserialize;
use throughline_instrument::{DbClient, DbOperation, SharedTracer, Spans};
use throughline_service_kit::ErrorChain;
use throughline_service_kit::objects::open_object_store;

use crate::config::{S3Settings, WorkerConfig};
use crate::database::{StatusUpdate, WorkerDatabase};
use crate::names;
pub use crate::open::OpenError;
use crate::outbox::Outbox;
pub use crate::step::{Step, StepError};

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

/// Risk figures from the validation step, carried to the status update.
#[derive(Debug, Clone, Copy)]
struct Risk {
    score: f64,
    level: &'static str,
}

/// Runs the steps for one record.
#[derive(Debug)]
pub struct Processor {
    /// The steps' own INTERNAL spans.
    spans: Spans,
    db: WorkerDatabase,
    /// The CLIENT spans of the database steps.
    db_spans: DbClient,
    documents: Arc<dyn ObjectStore>,
    /// Masks credentials in the document store's errors (empty for local files).
    documents_settings: S3Settings,
    outbox: Outbox,
    failure_rates: HashMap<Step, f64>,
}

impl Processor {
    /// Opens the database, the document store and the outbox. Blocking (file system);
    /// PostgreSQL is connected to on [`Self::connect`] or first use.
    pub fn open(config: &WorkerConfig, tracer: SharedTracer) -> Result<Self, OpenError> {
        let db = WorkerDatabase::open(&config.database)?;
        let db_spans = DbClient::shared(tracer.clone(), db.target()).semconv(config.db_semconv);
        let documents = open_object_store(&config.documents).map_err(OpenError::from)?;
        let documents_settings = config.documents.s3_settings().cloned().unwrap_or_default();
        let outbox = Outbox::open(&config.outbox_dir)?;
        Ok(Self {
            spans: Spans::shared(tracer),
            db,
            db_spans,
            documents,
            documents_settings,
            outbox,
            failure_rates: config.failure_rates.clone(),
        })
    }

    /// Connects to the database now (PostgreSQL), so a cold start fails on an unreachable one.
    pub async fn connect(&self) -> Result<(), OpenError> {
        self.db.connect().await
    }

    /// Runs every step under the current context (the record's CONSUMER span); stops at the
    /// first failure.
    pub async fn process(&self, record: &CustomerRecord, attempt: i64) -> Result<(), StepError> {
        let risk = self
            .step(Step::Validation, async { Ok(validate(record)) })
            .await?;
        Context::current()
            .span()
            .set_attribute(KeyValue::new(names::RISK_SCORE, risk.score));
        self.step(Step::Compliance, self.compliance(record, risk))
            .await?;
        self.step(Step::Audit, self.audit(record, attempt)).await?;
        self.step(Step::Documents, self.store_documents(record, risk))
            .await?;
        self.step(
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
        self.step(Step::Notification, self.notify(record)).await?;
        self.step(Step::FollowUp, async {
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

    /// Runs one step in its own child span (the database's CLIENT span for a database step);
    /// an injected failure happens before the work.
    async fn step<T>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let name = KeyValue::new(names::STEP, step.name());
        let span = match step.database_call() {
            Some((operation, table)) => self.db_spans.start(
                DbOperation::new(operation)
                    .collection(table)
                    .attribute(name),
            ),
            None => self.spans.start(step.span_name(), [name]),
        };
        let rate = self.failure_rates.get(&step).copied().unwrap_or(0.0);
        let result = if rate > 0.0 && rand::random::<f64>() < rate {
            Err(StepError::Injected { step: step.name() })
        } else {
            span.run(work).await
        };
        if let Err(e) = &result {
            span.fail(step.name(), e);
        }
        result
    }

    async fn compliance(&self, record: &CustomerRecord, risk: Risk) -> Result<(), StepError> {
        // KYC, AML, sanctions and PEP screening: each its own span under "compliance checks".
        let enhanced = record.customer_type == "enterprise" || risk.level == "high";
        for check in ["kyc", "aml", "sanctions", "pep"] {
            self.spans.instant(
                format!("{check} check"),
                [
                    KeyValue::new(names::COMPLIANCE_CHECK, check),
                    KeyValue::new(names::COMPLIANCE_RESULT, "pass"),
                    KeyValue::new(names::COMPLIANCE_ENHANCED, enhanced),
                ],
            );
        }
        Context::current()
            .span()
            .set_attribute(KeyValue::new(names::COMPLIANCE_CHECKS, 4_i64));
        Ok(())
    }

    async fn audit(&self, record: &CustomerRecord, attempt: i64) -> Result<(), StepError> {
        self.db
            .insert_audit(
                record.customer_id.clone(),
                record.request_id.clone(),
                attempt,
                now_rfc3339(),
            )
            .await
            .map_err(|message| StepError::Failed {
                step: Step::Audit.name(),
                message,
            })
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
                message: self.documents_settings.redact(&e.to_string()),
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
        self.db
            .update_status(StatusUpdate {
                customer_id: customer_id.to_owned(),
                status,
                detail,
                risk_score,
                attempt,
                updated_at: now_rfc3339(),
            })
            .await
            .map_err(|message| StepError::Failed {
                step: Step::Status.name(),
                message,
            })
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
        self.outbox
            .send(&message)
            .await
            .map_err(|e| StepError::Failed {
                step: Step::Notification.name(),
                message: ErrorChain(&e).to_string(),
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

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        // Formatting the current UTC time as RFC 3339 cannot fail (the year is in range).
        .unwrap_or_default()
}
