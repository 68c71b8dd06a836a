//! Leader election through a `coordination.k8s.io/v1` Lease (talks to the API server), so
//! several operator replicas are safe: only the holder reconciles; the others wait and take
//! over when the holder stops renewing.
//!
//! Writes use the Lease's `resourceVersion` (optimistic concurrency), so two candidates can
//! never both believe they won: one replace fails with 409 Conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

/// Why leadership could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("failed to {step} Lease {namespace}/{name}: {source}")]
    Kube { step: &'static str, namespace: String, name: String, source: kube::Error },
    #[error("lost the Lease {namespace}/{name} to {holder}")]
    Lost { namespace: String, name: String, holder: String },
}

/// Timing of the election: the holder renews every `renew_every`; a Lease not renewed within
/// `lease_duration` may be taken over.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// One candidate for the Lease `namespace/name`.
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
        }
    }

    fn err(&self, step: &'static str) -> impl FnOnce(kube::Error) -> LeaderError + '_ {
        move |source| LeaderError::Kube { step, namespace: self.namespace.clone(), name: self.name.clone(), source }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return Ok(());
                }
                Ok(false) => {}
                Err(LeaderError::Kube { source: kube::Error::Api(status), .. }) if status.code == 409 => {}
                Err(err) => return Err(err),
            }
            tokio::time::sleep(self.timing.retry_every).await;
        }
    }

    /// Renews the Lease until it is lost; returns the reason. Transient failures are retried
    /// until the Lease would expire, after which another replica may hold it.
    pub async fn hold(&self) -> LeaderError {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    let holder = self.holder().await.unwrap_or_else(|| "another replica".to_owned());
                    return LeaderError::Lost { namespace: self.namespace.clone(), name: self.name.clone(), holder };
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not renew the leader Lease");
                    if last_renewal.elapsed() >= self.timing.lease_duration {
                        return err;
                    }
                }
            }
        }
    }

    /// Gives the Lease up, so another replica takes over at once rather than after it expires.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.name, "released the leader Lease"),
            Err(err) => tracing::warn!(error = %err, "could not release the leader Lease"),
        }
    }

    async fn holder(&self) -> Option<String> {
        self.api.get_opt(&self.name).await.ok().flatten()?.spec?.holder_identity
    }

    /// Takes the Lease when it is free or expired, renews it when held; `false` when another
    /// live holder has it.
    async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let duration_secs = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(self.err("read"))? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.api.create(&PostParams::default(), &lease).await.map_err(self.err("create"))?;
            return Ok(true);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let held_by_me = spec.holder_identity.as_deref() == Some(&self.identity);
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(secs)) => *renewed + SignedDuration::from_secs(i64::from(secs)) < now,
            _ => true,
        };
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !held_by_me && !expired && !free {
            return Ok(false);
        }
        if !held_by_me {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(duration_secs);
        // `lease` still carries the resourceVersion we read: a concurrent writer makes this a 409.
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map_err(self.err("update"))?;
        Ok(true)
    }
}
