//! Apply step (talks to the API server): puts the objects of the build step into the cluster and
//! reads back what they report, for the status step.
//!
//! - Every write is a server-side apply with the field manager [`FIELD_MANAGER`], forced: the
//!   OrderingSystem is the source of truth for every field it sets.
//! - An object is written only when the live one lacks [`APPLIED_HASH_ANNOTATION`] with the hash
//!   of exactly what would be applied, so an idle system costs reads only.
//! - The migration and schema Jobs are created once, then only observed: a new image (or
//!   target database) gives a new Job name in the build step, and so a new Job.
//! - A rollout applies the ConfigMap, Deployments, Services and autoscaler, deletes what the
//!   spec turned off, and deletes the Jobs of earlier images.
//!
//! What was changed is kept as [`Change`]s, which the reconciler publishes as Events.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{self, COMPONENT_LABEL, Desired, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, Workload};
use crate::conditions::{JobState, WorkloadState};
use crate::crd::OrderingSystem;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "ordexa-operator";
/// Annotation holding the hash of what the operator last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "ordexa.io/applied-hash";

/// Why the apply step failed: one variant per request it makes, each with the API server's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the migration Job {name}")]
    ReadMigrationJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the migration Job {name}")]
    ApplyMigrationJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read the Cassandra schema Job {name}")]
    ReadSchemaJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the Cassandra schema Job {name}")]
    ApplySchemaJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the ConfigMap {name}")]
    ApplyConfigMap {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the Deployment {name}")]
    ApplyDeployment {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read the Deployment {name}")]
    ReadDeployment {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the Deployment {name} of a workload turned off in the spec")]
    DeleteDeployment {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the Service {name}")]
    ApplyService {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the Service {name} of a workload turned off in the spec")]
    DeleteService {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply the HorizontalPodAutoscaler {name}")]
    ApplyAutoscaler {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the HorizontalPodAutoscaler {name} (spec.api.autoscaling is unset)")]
    DeleteAutoscaler {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list the migration and schema Jobs to find those of earlier images")]
    ListJobs {
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the Job {name} of an earlier image")]
    DeleteSupersededJob {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Which of the two one-shot Jobs a call is about (they fail with different errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRole {
    /// `ordexa migrate`: the Postgres migrations.
    Migration,
    /// `ordexa cassandra-schema`: the Cassandra keyspace and tables.
    CassandraSchema,
}

impl JobRole {
    fn read_failed(self, name: String, source: kube::Error) -> Error {
        match self {
            JobRole::Migration => Error::ReadMigrationJob { name, source },
            JobRole::CassandraSchema => Error::ReadSchemaJob { name, source },
        }
    }

    fn apply_failed(self, name: String, source: kube::Error) -> Error {
        match self {
            JobRole::Migration => Error::ApplyMigrationJob { name, source },
            JobRole::CassandraSchema => Error::ApplySchemaJob { name, source },
        }
    }
}

/// What the apply step changed in the cluster, for Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    JobCreated { name: String, image: String },
    ConfigApplied { config_hash: String },
    DeploymentApplied { name: String, image: String },
    WorkloadRemoved { name: String },
    JobDeleted { name: String },
}

impl Change {
    /// The Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Change::JobCreated { .. } => "JobCreated",
            Change::ConfigApplied { .. } => "ConfigApplied",
            Change::DeploymentApplied { .. } => "DeploymentApplied",
            Change::WorkloadRemoved { .. } => "WorkloadRemoved",
            Change::JobDeleted { .. } => "JobDeleted",
        }
    }

    /// The Event action.
    pub fn action(&self) -> &'static str {
        match self {
            Change::JobCreated { .. } => "CreateJob",
            Change::ConfigApplied { .. } => "ApplyConfigMap",
            Change::DeploymentApplied { .. } => "ApplyDeployment",
            Change::WorkloadRemoved { .. } => "DeleteDeployment",
            Change::JobDeleted { .. } => "DeleteJob",
        }
    }

    /// The Event note.
    pub fn note(&self) -> String {
        match self {
            Change::JobCreated { name, image } => format!("created Job {name} for image {image}"),
            Change::ConfigApplied { config_hash } => format!("applied ConfigMap (config hash {config_hash})"),
            Change::DeploymentApplied { name, image } => format!("applied Deployment {name} (image {image})"),
            Change::WorkloadRemoved { name } => format!("deleted Deployment {name}: turned off in the spec"),
            Change::JobDeleted { name } => format!("deleted Job {name} of an earlier image"),
        }
    }
}

/// Applies the objects of one OrderingSystem in its namespace and records what changed.
pub struct Applier<'a> {
    client: Client,
    namespace: String,
    system: &'a OrderingSystem,
    changes: Vec<Change>,
}

impl<'a> Applier<'a> {
    pub fn new(client: Client, namespace: &str, system: &'a OrderingSystem) -> Self {
        Self { client, namespace: namespace.to_owned(), system, changes: Vec::new() }
    }

    /// What this applier changed so far, in order.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The state of `job` without changing anything (`NotCreated` when it does not exist).
    pub async fn job_state(&self, role: JobRole, job: &Job) -> Result<JobState, Error> {
        let name = job.name_any();
        let live = self.api::<Job>().get_opt(&name).await.map_err(|source| role.read_failed(name, source))?;
        Ok(live.as_ref().map_or(JobState::NotCreated, JobState::of))
    }

    /// Creates `job` unless it exists, and returns its state.
    pub async fn ensure_job(&mut self, role: JobRole, job: &Job) -> Result<JobState, Error> {
        let name = job.name_any();
        let api = self.api::<Job>();
        let live = match api.get_opt(&name).await.map_err(|source| role.read_failed(name.clone(), source))? {
            Some(live) => live,
            None => {
                let created = apply(&api, job).await.map_err(|source| role.apply_failed(name.clone(), source))?;
                self.changes.push(Change::JobCreated { name, image: self.system.spec.image.clone() });
                created
            }
        };
        let state = JobState::of(&live);
        if let JobState::Failed { job, message } = &state {
            tracing::warn!(job, message, "Job failed");
        }
        Ok(state)
    }

    /// Applies the ConfigMap, Deployments, Services and autoscaler, deletes what the spec turned
    /// off and the Jobs of earlier images; returns each workload's state.
    pub async fn roll_out(&mut self, desired: &Desired) -> Result<Vec<(Workload, WorkloadState)>, Error> {
        let config_map = &desired.config_map;
        let (_, changed) = apply_if_changed(&self.api::<ConfigMap>(), config_map)
            .await
            .map_err(|source| Error::ApplyConfigMap { name: config_map.name_any(), source })?;
        if changed {
            self.changes.push(Change::ConfigApplied { config_hash: desired.config_hash.clone() });
        }

        let mut states = Vec::new();
        let deployments = self.api::<Deployment>();
        for (workload, deployment) in &desired.deployments {
            let name = deployment.name_any();
            let (live, changed) = apply_if_changed(&deployments, deployment)
                .await
                .map_err(|source| Error::ApplyDeployment { name: name.clone(), source })?;
            if changed {
                self.changes.push(Change::DeploymentApplied { name, image: self.system.spec.image.clone() });
            }
            states.push((*workload, WorkloadState::of(&live)));
        }

        let services = self.api::<Service>();
        for service in &desired.services {
            apply_if_changed(&services, service)
                .await
                .map_err(|source| Error::ApplyService { name: service.name_any(), source })?;
        }

        let autoscalers = self.api::<HorizontalPodAutoscaler>();
        match &desired.api_autoscaler {
            Some(hpa) => {
                apply_if_changed(&autoscalers, hpa)
                    .await
                    .map_err(|source| Error::ApplyAutoscaler { name: hpa.name_any(), source })?;
            }
            None => {
                let name = Workload::Api.object_name(&self.system.name_any());
                delete_if_present(&autoscalers, &name)
                    .await
                    .map_err(|source| Error::DeleteAutoscaler { name, source })?;
            }
        }

        for workload in &desired.disabled {
            let name = workload.object_name(&self.system.name_any());
            let removed = delete_if_present(&deployments, &name)
                .await
                .map_err(|source| Error::DeleteDeployment { name: name.clone(), source })?;
            if removed {
                self.changes.push(Change::WorkloadRemoved { name: name.clone() });
            }
            delete_if_present(&services, &name).await.map_err(|source| Error::DeleteService { name, source })?;
            states.push((*workload, WorkloadState::Disabled));
        }

        self.delete_superseded_jobs(desired).await?;
        states.sort_by_key(|(w, _)| *w);
        Ok(states)
    }

    /// Workload states without changing anything: existing Deployments keep running (an older
    /// image until the new image's migrations succeed).
    pub async fn observe_workloads(&self, desired: &Desired) -> Result<Vec<(Workload, WorkloadState)>, Error> {
        let api = self.api::<Deployment>();
        let mut states = Vec::new();
        for workload in Workload::ALL {
            let state = if desired.disabled.contains(&workload) {
                WorkloadState::Disabled
            } else {
                let name = workload.object_name(&self.system.name_any());
                match api.get_opt(&name).await.map_err(|source| Error::ReadDeployment { name, source })? {
                    Some(live) => WorkloadState::of(&live),
                    None => WorkloadState::Waiting,
                }
            };
            states.push((workload, state));
        }
        Ok(states)
    }

    /// Once the current image is migrated, the Jobs of earlier images are only clutter.
    async fn delete_superseded_jobs(&mut self, desired: &Desired) -> Result<(), Error> {
        let api = self.api::<Job>();
        let current = [desired.migrate_job.name_any(), desired.schema_job.name_any()];
        let selector = format!(
            "{INSTANCE_LABEL}={},{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL} in (migrate,cassandra-schema)",
            self.system.name_any()
        );
        let jobs =
            api.list(&ListParams::default().labels(&selector)).await.map_err(|source| Error::ListJobs { source })?;
        for job in jobs {
            let name = job.name_any();
            if current.contains(&name) || job.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let owned = job.owner_references().iter().any(|o| Some(&o.uid) == self.system.metadata.uid.as_ref());
            if !owned {
                continue;
            }
            let params =
                DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
            api.delete(&name, &params)
                .await
                .map_err(|source| Error::DeleteSupersededJob { name: name.clone(), source })?;
            self.changes.push(Change::JobDeleted { name });
        }
        Ok(())
    }
}

/// Server-side apply of `object` (with [`FIELD_MANAGER`], taking ownership of conflicting
/// fields: the OrderingSystem is the source of truth).
async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    <K as Resource>::DynamicType: Default,
{
    let dt = Default::default();
    // Server-side apply needs apiVersion and kind in the body.
    let mut value = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), K::api_version(&dt).into());
        map.insert("kind".to_owned(), K::kind(&dt).into());
    }
    api.patch(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value)).await
}

/// The value of [`APPLIED_HASH_ANNOTATION`] for `object` as built (before the annotation is
/// added).
pub(crate) fn content_hash<K: Serialize>(object: &K) -> Result<String, kube::Error> {
    let bytes = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
    Ok(build::digest(&bytes))
}

/// Applies `object` unless the live object already carries the hash of exactly this content.
/// Returns the live object and whether a write happened.
async fn apply_if_changed<K>(api: &Api<K>, object: &K) -> Result<(K, bool), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    <K as Resource>::DynamicType: Default,
{
    let content_hash = content_hash(object)?;
    if let Some(live) = api.get_opt(&object.name_any()).await? {
        let applied = live.annotations().get(APPLIED_HASH_ANNOTATION);
        if applied == Some(&content_hash) && live.meta().deletion_timestamp.is_none() {
            return Ok((live, false));
        }
    }
    let mut object = object.clone();
    object.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_owned(), content_hash);
    Ok((apply(api, &object).await?, true))
}

/// Deletes `name` when it exists (read first, so an absent object costs no write); returns
/// whether it did.
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if api.get_opt(name).await?.is_none() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(source),
    }
}
