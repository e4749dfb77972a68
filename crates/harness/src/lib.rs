//! The generic half of `throughline up`, `load` and `verify`, so a reference system is a
//! description and a scenario, not a copy of the machinery.
//!
//! - [`supervisor`]: starts parts as processes (logs appended and rotated by size, no colour
//!   codes), waits for them to listen, restarts a part that died with backoff, gives up with a
//!   clear message after repeated crashes, and stops them in reverse order. Parts die with the
//!   supervisor ([`die_with_parent`]).
//! - [`system`]: what a system is made of — its parts, their environment, the broker
//!   declarations it needs (written as the broker's own `--config` file), its expected trace
//!   shape and load scenario — and the [`Platform`] (one collector, one broker) under them all.
//! - [`expect`]: the one trace-expectation checker (hops and span kinds), used by `load`,
//!   `verify` and the tests, on top of the store's own integrity verdict.
//! - [`load`]: the load driver (by rate or by concurrency, latency histogram, progress bar,
//!   summary) and [`readback`], which reads traces back and judges them.

pub mod expect;
pub mod load;
pub mod lock;
pub mod logs;
pub mod parent;
pub mod ports;
pub mod readback;
pub mod supervisor;
pub mod system;

pub use expect::{Hop, Judgement, SpanPattern, TraceExpectation, Verdict};
pub use load::{Expect, LoadPlan, LoadReport, Request, Scenario};
pub use lock::DataDirLock;
pub use parent::{DIE_WITH_PARENT_ENV, die_with_parent};
pub use ports::{PortClaim, check_ports_free};
pub use readback::{TraceCheck, TraceQuery};
pub use supervisor::{Event, PartSpec, RestartPolicy, Supervisor};
pub use system::{Platform, Service, SystemDescription, merged_declarations};
