//! What every long-running Ordexa process shares — the workload roles and the operator alike:
//!
//! - [`env`]: the configuration contract, each `ORDEXA_*` name defined once;
//! - [`telemetry`]: the tracing setup and log format;
//! - [`metrics`]: the Prometheus registry and the HTTP request metrics;
//! - [`health`] and [`ops`]: readiness with a reason, and the `/healthz` `/readyz` `/metrics` server;
//! - [`shutdown`]: SIGTERM and Ctrl-C as one signal every task can wait on;
//! - [`problem`]: RFC 9457 problem details, the one error body of every HTTP server;
//! - [`auth`]: bearer token verification;
//! - [`backoff`]: retry delays.

pub mod auth;
pub mod backoff;
pub mod env;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use self::metrics::{metrics_response, metrics_upkeep, prometheus};
pub use backoff::backoff_delay;
pub use health::Health;
pub use ops::{ops_router, spawn_ops_server};
pub use shutdown::{Shutdown, ShutdownTrigger};
