//! The reconciler (talks to the API server and Kafka): for each `OrderingSystem`, in order,
//! topics → migration Job → Cassandra schema Job → ConfigMap, Deployments, Services → status.
//!
//! - Writes use server-side apply with the field manager [`FIELD_MANAGER`], and are skipped
//!   when the live object already carries the hash of what would be applied, so an idle system
//!   costs reads only: no reconcile storm, no write traffic.
//! - Workloads roll out only after both Jobs succeeded for the current image; until then the
//!   running Deployments (of the previous image) are left alone.
//! - Paused systems are observed, never changed; status stays fresh and deletion still works.
//! - The finalizer [`FINALIZER`] applies the topic deletion policy; everything else the system
//!   owns goes with it through owner references (the garbage collector deletes it).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::build::{
    self, BuildError, COMPONENT_LABEL, Desired, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, Workload,
};
use crate::conditions::{self, JobState, Observed, TopicsState, WorkloadState};
use crate::crd::{OrderingSystem, OrderingSystemStatus, TopicDeletionPolicy};
use crate::topics::{self, TopicChange, TopicError};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "ordexa-operator";
/// Finalizer that applies the topic deletion policy before the OrderingSystem goes away.
pub const FINALIZER: &str = "ordexa.io/topic-deletion-policy";
/// Annotation holding the hash of what the operator last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "ordexa.io/applied-hash";

/// How often a Ready system is looked at again when nothing changes (watches cover the rest).
const RESYNC_READY: Duration = Duration::from_secs(300);
/// How often a system that is not Ready yet is looked at again.
const RESYNC_PROGRESSING: Duration = Duration::from_secs(30);
/// Retry delay after a failed reconcile.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(15);

/// Why a reconcile failed. The variant names the step; [`Error::reason`] becomes the Event
/// reason and the metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to build the desired objects: {0}")]
    Build(#[from] BuildError),
    #[error("failed to {step}: {source}")]
    Kube { step: String, source: kube::Error },
    #[error("failed to delete the topics (topicDeletionPolicy Delete): {0}")]
    DeleteTopics(#[source] TopicError),
    #[error("OrderingSystem has no namespace")]
    NoNamespace,
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A stable, low-cardinality name for metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Build(_) => "BuildFailed",
            Error::Kube { .. } => "ApiRequestFailed",
            Error::DeleteTopics(_) => "TopicDeletionFailed",
            Error::NoNamespace => "NoNamespace",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

fn kube_err(step: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let step = step.into();
    move |source| Error::Kube { step, source }
}

/// Shared by every reconcile.
pub struct Context {
    /// Client for every read and write the reconciler makes.
    pub client: Client,
    /// Publishes Events on OrderingSystems.
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance };
        Self { recorder: Recorder::new(client.clone(), reporter), client }
    }
}

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first. With a
/// `namespace`, only OrderingSystems (and owned objects) of that namespace are watched.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    Controller::new(scoped_api::<OrderingSystem>(&client, namespace.as_deref()), watcher::Config::default())
        .owns(scoped_api::<Deployment>(&client, namespace.as_deref()), owned.clone())
        .owns(scoped_api::<Job>(&client, namespace.as_deref()), owned.clone())
        .owns(scoped_api::<Service>(&client, namespace.as_deref()), owned.clone())
        .owns(scoped_api::<ConfigMap>(&client, namespace.as_deref()), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(system = %object, "reconciled"),
                Err(err) => tracing::warn!(error = %err, "reconcile failed"),
            }
        })
        .await;
}

fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// One pass over one OrderingSystem.
pub async fn reconcile(system: Arc<OrderingSystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<OrderingSystem> = Api::namespaced(ctx.client.clone(), &namespace);
    let span = tracing::info_span!("reconcile", system = %system.name_any(), namespace = %namespace);
    let result = finalizer(&api, FINALIZER, system, |event| async {
        match event {
            FinalizerEvent::Apply(system) => apply(&system, &ctx).await,
            FinalizerEvent::Cleanup(system) => cleanup(&system, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)));
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("ordexa_operator_reconciles_total", "outcome" => outcome).increment(1);
    metrics::histogram!("ordexa_operator_reconcile_duration_seconds").record(started.elapsed().as_secs_f64());
    result
}

/// Failed reconciles are retried after a pause; the error is logged and counted.
pub fn error_policy(system: Arc<OrderingSystem>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(system = %system.name_any(), reason = error.reason(), error = %error, "reconcile failed; retrying");
    metrics::counter!("ordexa_operator_reconcile_errors_total", "reason" => error.reason()).increment(1);
    Action::requeue(RETRY_AFTER_ERROR)
}

async fn apply(system: &OrderingSystem, ctx: &Context) -> Result<Action, Error> {
    let desired = build::desired(system)?;
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let mut pass = Pass { system, ctx, namespace, events: Vec::new() };
    let observed =
        if system.spec.paused { pass.observe_paused(&desired).await? } else { pass.converge(&desired).await? };

    let status = conditions::status(&observed, system.status.as_ref(), Timestamp::now());
    pass.condition_events(system.status.as_ref(), &status);
    let ready = status.conditions.iter().any(|c| c.type_ == conditions::READY && c.status == "True");
    if system.status.as_ref() != Some(&status) {
        let api: Api<OrderingSystem> = Api::namespaced(ctx.client.clone(), &pass.namespace);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&system.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err("update the OrderingSystem status"))?;
    }
    pass.publish_events().await;
    Ok(Action::requeue(if ready || system.spec.paused { RESYNC_READY } else { RESYNC_PROGRESSING }))
}

async fn cleanup(system: &OrderingSystem, ctx: &Context) -> Result<Action, Error> {
    let kafka = &system.spec.kafka;
    let reference = system.object_ref(&());
    let (reason, note) = match kafka.topic_deletion_policy {
        TopicDeletionPolicy::Retain => (
            "TopicsRetained",
            format!(
                "topics {} are kept (topicDeletionPolicy Retain)",
                topics::topic_names(&kafka.topic_prefix).join(", ")
            ),
        ),
        TopicDeletionPolicy::Delete => {
            topics::delete(&kafka.bootstrap_servers, &kafka.topic_prefix).await.map_err(Error::DeleteTopics)?;
            ("TopicsDeleted", format!("deleted topics {}", topics::topic_names(&kafka.topic_prefix).join(", ")))
        }
    };
    tracing::info!(system = %system.name_any(), reason, "{note}");
    let event = Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Delete".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(error = %err, "could not publish an Event");
    }
    Ok(Action::await_change())
}

/// One reconcile pass: the system, and the Events to publish once status is written.
struct Pass<'a> {
    system: &'a OrderingSystem,
    ctx: &'a Context,
    namespace: String,
    events: Vec<Event>,
}

impl Pass<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn event(&mut self, type_: EventType, reason: &str, action: &str, note: String) {
        self.events.push(Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        });
    }

    async fn publish_events(&mut self) {
        let reference = self.system.object_ref(&());
        for event in self.events.drain(..) {
            if let Err(err) = self.ctx.recorder.publish(&event, &reference).await {
                tracing::warn!(error = %err, reason = %event.reason, "could not publish an Event");
            }
        }
    }

    /// An Event for every condition whose status or reason changed.
    fn condition_events(&mut self, previous: Option<&OrderingSystemStatus>, status: &OrderingSystemStatus) {
        for condition in &status.conditions {
            let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == condition.type_));
            if before.is_some_and(|b| b.status == condition.status && b.reason == condition.reason) {
                continue;
            }
            let type_ = if condition.status == "True" || condition.reason == "Paused" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            // Progress notes ("JobRunning") are not worth a warning.
            let type_ = if matches!(
                condition.reason.as_str(),
                "JobRunning" | "RollingOut" | "WaitingForMigrations" | "WaitingForMigration" | "NotStarted"
            ) {
                EventType::Normal
            } else {
                type_
            };
            self.event(type_, &condition.reason, "UpdateStatus", format!("{}: {}", condition.type_, condition.message));
        }
    }

    /// The full pipeline: makes the cluster and Kafka match the spec, step by step.
    async fn converge(&mut self, desired: &Desired) -> Result<Observed, Error> {
        let spec = &self.system.spec;
        let topics = match topics::ensure(
            &spec.kafka.bootstrap_servers,
            &spec.kafka.topic_prefix,
            spec.kafka.partitions,
            spec.kafka.replication_factor,
        )
        .await
        {
            Ok(outcome) => {
                for change in outcome.changes {
                    match change {
                        TopicChange::Created { topic, partitions } => self.event(
                            EventType::Normal,
                            "TopicCreated",
                            "CreateTopic",
                            format!("created topic {topic} with {partitions} partitions"),
                        ),
                        TopicChange::Grown { topic, from, to } => self.event(
                            EventType::Normal,
                            "TopicGrown",
                            "GrowTopic",
                            format!("grew topic {topic} from {from} to {to} partitions"),
                        ),
                    }
                }
                outcome.state
            }
            Err(err) => TopicsState::Failed { message: err.to_string() },
        };
        // Without topics the relay and projector cannot start: nothing further is created.
        let topics_exist = matches!(topics, TopicsState::Ready { .. } | TopicsState::ShrinkRefused { .. });

        let migrate = if topics_exist {
            self.ensure_job(&desired.migrate_job).await?
        } else {
            self.job_state(&desired.migrate_job).await?
        };
        let schema = if topics_exist && migrate.succeeded() {
            self.ensure_job(&desired.schema_job).await?
        } else {
            self.job_state(&desired.schema_job).await?
        };

        let workloads = if migrate.succeeded() && schema.succeeded() {
            self.roll_out(desired).await?
        } else {
            self.observe_workloads(desired).await?
        };
        Ok(Observed {
            generation: self.system.metadata.generation,
            paused: false,
            image: spec.image.clone(),
            topics,
            migrate,
            schema,
            workloads,
        })
    }

    /// Paused: read everything, change nothing.
    async fn observe_paused(&mut self, desired: &Desired) -> Result<Observed, Error> {
        let kafka = &self.system.spec.kafka;
        let topics = topics::inspect(&kafka.bootstrap_servers, &kafka.topic_prefix, kafka.partitions)
            .await
            .unwrap_or_else(|err| TopicsState::Failed { message: err.to_string() });
        Ok(Observed {
            generation: self.system.metadata.generation,
            paused: true,
            image: self.system.spec.image.clone(),
            topics,
            migrate: self.job_state(&desired.migrate_job).await?,
            schema: self.job_state(&desired.schema_job).await?,
            workloads: self.observe_workloads(desired).await?,
        })
    }

    async fn job_state(&self, job: &Job) -> Result<JobState, Error> {
        let name = job.name_any();
        let live = self.api::<Job>().get_opt(&name).await.map_err(kube_err(format!("read Job {name}")))?;
        Ok(live.as_ref().map_or(JobState::NotCreated, JobState::of))
    }

    async fn ensure_job(&mut self, job: &Job) -> Result<JobState, Error> {
        let name = job.name_any();
        let api = self.api::<Job>();
        let live = match api.get_opt(&name).await.map_err(kube_err(format!("read Job {name}")))? {
            Some(live) => live,
            None => {
                let created = apply_object(&api, job).await.map_err(kube_err(format!("create Job {name}")))?;
                let image = &self.system.spec.image;
                self.event(
                    EventType::Normal,
                    "JobCreated",
                    "CreateJob",
                    format!("created Job {name} for image {image}"),
                );
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
    /// off and the Jobs of earlier images.
    async fn roll_out(&mut self, desired: &Desired) -> Result<Vec<(Workload, WorkloadState)>, Error> {
        let cm_api = self.api::<ConfigMap>();
        if apply_if_changed(&cm_api, &desired.config_map, "ConfigMap").await?.1 {
            self.event(
                EventType::Normal,
                "ConfigApplied",
                "ApplyConfigMap",
                format!("applied ConfigMap (config hash {})", desired.config_hash),
            );
        }
        let mut states = Vec::new();
        let deployments = self.api::<Deployment>();
        for (workload, deployment) in &desired.deployments {
            let name = deployment.name_any();
            let (live, changed) = apply_if_changed(&deployments, deployment, "Deployment").await?;
            if changed {
                self.event(
                    EventType::Normal,
                    "DeploymentApplied",
                    "ApplyDeployment",
                    format!("applied Deployment {name} (image {})", self.system.spec.image),
                );
            }
            states.push((*workload, WorkloadState::of(&live)));
        }
        let services = self.api::<Service>();
        for service in &desired.services {
            apply_if_changed(&services, service, "Service").await?;
        }
        let hpas = self.api::<HorizontalPodAutoscaler>();
        let hpa_name = Workload::Api.object_name(&self.system.name_any());
        match &desired.api_autoscaler {
            Some(hpa) => {
                apply_if_changed(&hpas, hpa, "HorizontalPodAutoscaler").await?;
            }
            None => {
                delete_if_present(&hpas, &hpa_name, "HorizontalPodAutoscaler").await?;
            }
        }
        for workload in &desired.disabled {
            let name = workload.object_name(&self.system.name_any());
            if delete_if_present(&deployments, &name, "Deployment").await? {
                self.event(
                    EventType::Normal,
                    "WorkloadRemoved",
                    "DeleteDeployment",
                    format!("deleted Deployment {name}: turned off in the spec"),
                );
            }
            delete_if_present(&services, &name, "Service").await?;
            states.push((*workload, WorkloadState::Disabled));
        }
        self.delete_superseded_jobs(desired).await?;
        states.sort_by_key(|(w, _)| *w);
        Ok(states)
    }

    /// Workload states without changing anything: existing Deployments keep running (an older
    /// image until the new image's migrations succeed).
    async fn observe_workloads(&self, desired: &Desired) -> Result<Vec<(Workload, WorkloadState)>, Error> {
        let api = self.api::<Deployment>();
        let mut states = Vec::new();
        for workload in Workload::ALL {
            let name = workload.object_name(&self.system.name_any());
            let state = if desired.disabled.contains(&workload) {
                WorkloadState::Disabled
            } else {
                match api.get_opt(&name).await.map_err(kube_err(format!("read Deployment {name}")))? {
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
        let jobs = api.list(&ListParams::default().labels(&selector)).await.map_err(kube_err("list Jobs"))?;
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
            api.delete(&name, &params).await.map_err(kube_err(format!("delete Job {name}")))?;
            self.event(EventType::Normal, "JobDeleted", "DeleteJob", format!("deleted Job {name} of an earlier image"));
        }
        Ok(())
    }
}

/// Server-side apply of `object` (with [`FIELD_MANAGER`], taking ownership of conflicting
/// fields: the OrderingSystem is the source of truth).
async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
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

/// Applies `object` unless the live object already carries the hash of exactly this content.
/// Returns the live object and whether a write happened.
async fn apply_if_changed<K>(api: &Api<K>, object: &K, what: &str) -> Result<(K, bool), Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    <K as Resource>::DynamicType: Default,
{
    let content_hash = build::hash(object, "an object to apply")?;
    let name = object.name_any();
    if let Some(live) = api.get_opt(&name).await.map_err(kube_err(format!("read {what} {name}")))? {
        let applied = live.annotations().get(APPLIED_HASH_ANNOTATION);
        if applied == Some(&content_hash) && live.meta().deletion_timestamp.is_none() {
            return Ok((live, false));
        }
    }
    let mut object = object.clone();
    object.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_owned(), content_hash);
    let live = apply_object(api, &object).await.map_err(kube_err(format!("apply {what} {name}")))?;
    Ok((live, true))
}

/// Deletes `name` when it exists (read first, so an absent object costs no write); returns
/// whether it did.
async fn delete_if_present<K>(api: &Api<K>, name: &str, what: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if api.get_opt(name).await.map_err(kube_err(format!("read {what} {name}")))?.is_none() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::Kube { step: format!("delete {what} {name}"), source }),
    }
}

/// Labels every object of a system carries, for listing.
pub fn system_selector(system: &str) -> String {
    let labels = BTreeMap::from([(INSTANCE_LABEL, system), (MANAGED_BY_LABEL, MANAGED_BY)]);
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}
