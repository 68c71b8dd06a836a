//! The Ordexa operator: reconciles `OrderingSystem` resources into Kafka topics, the migration
//! and schema Jobs, and the api, relay, projector and frontend workloads.
//!
//! The reconcile is a pipeline of named steps, each its own module:
//! [`topics`] (Kafka admin API) → [`build`] (pure: desired objects from the spec) →
//! [`controller`] (server-side apply, Job gating, status) with [`conditions`] (pure: status
//! from what was observed). [`leader`] keeps several replicas safe, [`telemetry`] serves
//! metrics and health.

pub mod build;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod telemetry;
pub mod topics;
