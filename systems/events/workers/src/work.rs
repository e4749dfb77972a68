//! What each worker does with one `placement.created` record, under its own INTERNAL spans
//! (and the database's and the webhook's CLIENT spans) inside the record's CONSUMER span.

use std::sync::Arc;

use events_db::{Arg, DbError, PLACEMENT_COLUMNS, Placement};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use opentelemetry::KeyValue;
use rand::Rng as _;
use serde_json::{Value, json};
use throughline_instrument::{HttpClient, RecordError, Spans};
use throughline_service_kit::ErrorChain;
use throughline_service_kit::objects::{ObjectStoreError, S3Settings, open_object_store};

use crate::{Kind, WorkerConfig, failed};

/// The placement's id, on each step span.
const PLACEMENT_ID: &str = "placement.id";

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Database(#[from] events_db::OpenError),
    #[error("NEDLIA_FILES_URL {location}: cannot open the placement file store")]
    Files {
        location: String,
        #[source]
        source: ObjectStoreError,
    },
    #[error("cannot build the webhook's HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// A worker's business half.
#[derive(Debug)]
pub(crate) struct Work {
    kind: Kind,
    db: events_db::Database,
    spans: Spans,
    http: HttpClient,
    files: Option<Arc<dyn ObjectStore>>,
    /// Masks credentials in the file store's errors (empty for a directory).
    files_settings: S3Settings,
    webhook: Option<reqwest::Url>,
    failure_rate: f64,
}

impl Work {
    pub(crate) fn open(
        config: &WorkerConfig,
        db: events_db::Database,
        spans: Spans,
        http: HttpClient,
    ) -> Result<Self, OpenError> {
        let files =
            match config.kind {
                Kind::FileGenerator => Some(open_object_store(&config.files).map_err(
                    |source| OpenError::Files {
                        location: config.files.to_string(),
                        source,
                    },
                )?),
                _ => None,
            };
        Ok(Self {
            kind: config.kind,
            db,
            spans,
            http,
            files,
            files_settings: config.files.s3_settings().cloned().unwrap_or_default(),
            webhook: config.webhook_url.clone(),
            failure_rate: config.failure_rate,
        })
    }

    /// Processes one record's body (an EventBridge envelope of `placement.created`).
    pub(crate) async fn process(&self, body: &str) -> Result<(), RecordError> {
        let id = placement_id(body)?;
        if self.failure_rate > 0.0 && rand::rng().random::<f64>() < self.failure_rate {
            return Err(failed(
                "injected",
                format!(
                    "failure injected in {} (NEDLIA_FAILURE_RATE)",
                    self.kind.service_name()
                ),
            ));
        }
        match self.kind {
            Kind::FileGenerator => self.generate_file(id).await,
            Kind::Validator => self.validate(id).await,
            Kind::Notifier => self.notify(id).await,
        }
    }

    async fn generate_file(&self, id: String) -> Result<(), RecordError> {
        let attrs = [KeyValue::new(PLACEMENT_ID, id.clone())];
        let generate = self.spans.start("file_generator.generate", attrs.clone());
        let rendered = generate.run(self.render(&id)).await;
        let file = match rendered {
            Ok(Some(file)) => file,
            Ok(None) => return Err(step_failed(&generate, "not_found", "no such placement")),
            Err(e) => return Err(step_failed(&generate, "database", ErrorChain(&e))),
        };
        generate.end();

        let upload = self.spans.start("file_generator.upload_s3", attrs);
        let path = ObjectPath::from(format!("placements/{id}.json"));
        let Some(files) = self.files.as_ref() else {
            return Err(step_failed(&upload, "config", "no file store"));
        };
        let bytes = bytes::Bytes::from(file.to_string());
        if let Err(e) = upload.run(files.put(&path, bytes.into())).await {
            let message = self.files_settings.redact(&ErrorChain(&e).to_string());
            return Err(step_failed(&upload, "object_store", message));
        }
        let file_key = path.to_string();
        let updated = upload
            .run(self.db.execute(
                "UPDATE",
                "placements",
                "UPDATE placements SET file_key = ?2 WHERE id = ?1",
                vec![Arg::from(&id), Arg::from(file_key)],
            ))
            .await;
        finish(&upload, updated)
    }

    async fn validate(&self, id: String) -> Result<(), RecordError> {
        let span = self.spans.start(
            "validator.validate",
            [KeyValue::new(PLACEMENT_ID, id.clone())],
        );
        let outcome = span.run(self.check(&id)).await;
        match outcome {
            Ok(Some(status)) => {
                span.set_attribute(KeyValue::new("placement.status", status));
                span.end();
                Ok(())
            }
            Ok(None) => Err(step_failed(&span, "not_found", "no such placement")),
            Err(e) => Err(step_failed(&span, "database", ErrorChain(&e))),
        }
    }

    async fn notify(&self, id: String) -> Result<(), RecordError> {
        let span = self.spans.start(
            "notifier.send_notification",
            [KeyValue::new(PLACEMENT_ID, id.clone())],
        );
        let Some(url) = self.webhook.clone() else {
            return Err(step_failed(&span, "config", "no webhook URL"));
        };
        let request = self
            .http
            .inner()
            .post(url)
            .json(&json!({"event": "placement.created", "placement_id": id}))
            .build();
        let request = match request {
            Ok(request) => request,
            Err(e) => return Err(step_failed(&span, "webhook", ErrorChain(&e))),
        };
        match span.run(self.http.execute(request)).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                let status = response.status();
                return Err(step_failed(
                    &span,
                    "webhook",
                    format!("webhook answered {status}"),
                ));
            }
            Err(e) => return Err(step_failed(&span, "webhook", ErrorChain(&e))),
        }
        let updated = span
            .run(self.db.execute(
                "UPDATE",
                "placements",
                "UPDATE placements SET notified_at = ?2 WHERE id = ?1",
                vec![Arg::from(&id), Arg::from(now())],
            ))
            .await;
        finish(&span, updated)
    }
}

impl Work {
    async fn placement(&self, id: &str) -> Result<Option<Placement>, DbError> {
        Ok(self
            .db
            .rows(
                "SELECT",
                "placements",
                &format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE id = ?1"),
                vec![Arg::from(id)],
                Placement::from_row,
            )
            .await?
            .into_iter()
            .next())
    }

    /// The placement file: the placement and its product.
    async fn render(&self, id: &str) -> Result<Option<Value>, DbError> {
        let Some(placement) = self.placement(id).await? else {
            return Ok(None);
        };
        let product = self
            .db
            .rows(
                "SELECT",
                "products",
                "SELECT id, name, price_cents FROM products WHERE id = ?1",
                vec![Arg::from(&placement.product_id)],
                |r| Ok(json!({"id": r.text(0)?, "name": r.text(1)?, "price_cents": r.int(2)?})),
            )
            .await?;
        Ok(Some(json!({
            "placement_id": placement.id,
            "video_id": placement.video_id,
            "start_time": placement.start_time,
            "end_time": placement.end_time,
            "product": product.into_iter().next(),
        })))
    }

    /// The validator's check: the video exists and nothing else overlaps; the status it set.
    async fn check(&self, id: &str) -> Result<Option<&'static str>, DbError> {
        let Some(p) = self.placement(id).await? else {
            return Ok(None);
        };
        let video = self
            .db
            .rows(
                "SELECT",
                "videos",
                "SELECT id FROM videos WHERE id = ?1",
                vec![Arg::from(&p.video_id)],
                |_| Ok(()),
            )
            .await?;
        let overlaps = self
            .db
            .rows(
                "SELECT",
                "placements",
                "SELECT id FROM placements WHERE video_id = ?1 AND id <> ?2 AND start_time < ?3 AND end_time > ?4 LIMIT 1",
                vec![
                    Arg::from(&p.video_id),
                    Arg::from(&p.id),
                    Arg::from(p.end_time),
                    Arg::from(p.start_time),
                ],
                |r| r.text(0),
            )
            .await?;
        let status = if !video.is_empty() && overlaps.is_empty() {
            "valid"
        } else {
            "invalid"
        };
        self.db
            .execute(
                "UPDATE",
                "placements",
                "UPDATE placements SET status = ?2 WHERE id = ?1",
                vec![Arg::from(&p.id), Arg::from(status)],
            )
            .await?;
        Ok(Some(status))
    }
}

/// `detail.placement_id` of an EventBridge envelope.
fn placement_id(body: &str) -> Result<String, RecordError> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| failed("body", format!("the body is not JSON: {e}")))?;
    envelope
        .get("detail")
        .and_then(|d| d.get("placement_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| failed("body", "the body has no detail.placement_id"))
}

fn step_failed(
    span: &throughline_instrument::ActiveSpan,
    error_type: &'static str,
    message: impl std::fmt::Display,
) -> RecordError {
    let message = message.to_string();
    span.fail(error_type, &message);
    failed(error_type, message)
}

fn finish(
    span: &throughline_instrument::ActiveSpan,
    updated: Result<u64, DbError>,
) -> Result<(), RecordError> {
    match updated {
        Ok(_) => Ok(()),
        Err(e) => Err(step_failed(span, "database", ErrorChain(&e))),
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placement_id_comes_from_the_envelopes_detail() {
        let body = r#"{"source": "nedlia.api", "detail": {"placement_id": "p-1", "_trace": {}}}"#;
        assert_eq!(placement_id(body).unwrap(), "p-1");
        for bad in ["nope", "{}", r#"{"detail": {"placement_id": ""}}"#] {
            assert_eq!(placement_id(bad).unwrap_err().error_type, "body", "{bad}");
        }
    }
}
