//! The Ordexa operator: reconciles `OrderingSystem` resources into Kafka topics, the migration
//! and schema Jobs, and the api, relay, projector and frontend workloads.
//!
//! The reconcile is a pipeline of named steps, each its own module with its own error:
//! [`build`] (pure: desired objects from the spec) → [`topics`] (Kafka admin API) →
//! [`apply`] (API server: server-side apply, Job gating reads, rollout) → [`conditions`] (pure:
//! status from what was observed). [`controller`] runs the pipeline, writes the status and
//! publishes Events; [`leader`] keeps several replicas safe. Logs, metrics, the health server
//! and the shutdown signal are the platform crate's, as in every Ordexa process.

pub mod apply;
pub mod build;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod topics;

#[cfg(test)]
mod fixtures;
