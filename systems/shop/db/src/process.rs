//! How a shop service starts as a process: its identity (namespace `ecommerce-platform`, the
//! seed's application name) and, while a Black Friday demo is set (at start, or later through
//! `POST /demo`), `demo.phase` stamped on every span it starts (the phase read as the span
//! starts).

use opentelemetry::KeyValue;
use throughline_service_kit::{ServiceIdentity, ServiceProcess};

use crate::{DemoClock, names};

/// The service kit's process for the shop service `name`.
pub fn shop_process(name: &'static str, demo: DemoClock) -> ServiceProcess {
    let process = ServiceProcess::new(ServiceIdentity {
        name,
        version: env!("CARGO_PKG_VERSION"),
        namespace: "ecommerce-platform",
    });
    process.telemetry(move |builder| {
        builder.stamp_spans(move || match demo.demo() {
            Some(_) => vec![KeyValue::new(names::DEMO_PHASE, demo.phase().as_str())],
            None => Vec::new(),
        })
    })
}
