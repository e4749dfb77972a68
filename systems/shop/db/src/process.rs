//! How a shop service starts as a process: its identity (namespace `ecommerce-platform`, the
//! seed's application name) and, in a Black Friday demo, `demo.phase` stamped on every span it
//! starts (the phase read as the span starts).

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
    if !demo.is_demo() {
        return process;
    }
    process.telemetry(move |builder| {
        builder.stamp_spans(move || vec![KeyValue::new(names::DEMO_PHASE, demo.phase().as_str())])
    })
}
