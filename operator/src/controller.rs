//! The reconciler (talks to the API server, and to Kafka through [`TopicAdmin`]): one pass over
//! an `OrderingSystem` runs the pipeline
//! build ([`build`], pure) → topics ([`topics`]) → migration Job → Cassandra schema Job →
//! ConfigMap, Deployments, Services ([`apply`]) → status ([`conditions`], pure) → status write
//! and Events.
//!
//! - Workloads roll out only after both Jobs succeeded for the current image; until then the
//!   running Deployments (of the previous image) are left alone.
//! - Paused systems are observed, never changed; status stays fresh and deletion still works.
//! - The finalizer [`FINALIZER`] applies the topic deletion policy; everything else the system
//!   owns goes with it through owner references (the garbage collector deletes it).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use crate::apply::{self, Applier, FIELD_MANAGER, JobRole};
use crate::build::{self, BuildError, Desired, MANAGED_BY, MANAGED_BY_LABEL};
use crate::conditions::{self, ChangedCondition, Observed, StatusUpdate, TopicsState};
use crate::crd::{OrderingSystem, TopicDeletionPolicy};
use crate::topics::{self, KafkaTopics, TopicAdmin, TopicChange, TopicError};

/// Finalizer that applies the topic deletion policy before the OrderingSystem goes away.
pub const FINALIZER: &str = "ordexa.io/topic-deletion-policy";

/// How often a Ready system is looked at again when nothing changes (watches cover the rest).
const RESYNC_READY: Duration = Duration::from_secs(300);
/// How often a system that is not Ready yet is looked at again.
const RESYNC_PROGRESSING: Duration = Duration::from_secs(30);
/// Retry delay after a failed reconcile.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(15);

/// Why a reconcile failed: the step, with its cause as the error's source. [`Error::reason`]
/// is the metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the OrderingSystem has no namespace")]
    NoNamespace,
    #[error("failed to build the desired objects")]
    Build(#[source] BuildError),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error("failed to write the status of OrderingSystem {name}")]
    PatchStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the topics {topics} (topicDeletionPolicy Delete)")]
    DeleteTopics {
        topics: String,
        #[source]
        source: TopicError,
    },
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    /// A stable, low-cardinality name of the failed step, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NoNamespace => "NoNamespace",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) | Error::PatchStatus { .. } => "ApiRequestFailed",
            Error::DeleteTopics { .. } => "TopicDeletionFailed",
            Error::Finalizer(err) => match err.as_ref() {
                finalizer::Error::ApplyFailed(err) | finalizer::Error::CleanupFailed(err) => err.reason(),
                _ => "FinalizerFailed",
            },
        }
    }
}

/// `error` and its causes on one line, each cause once (some errors repeat their source's
/// message in their own, others leave it to the chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Shared by every reconcile.
pub struct Context {
    /// Client for every read and write the reconciler makes.
    pub client: Client,
    /// Publishes Events on OrderingSystems.
    pub recorder: Recorder,
    /// Creates, grows, inspects and deletes the topics (Kafka's admin API in production).
    pub topics: Arc<dyn TopicAdmin>,
}

impl Context {
    /// A context that reaches Kafka through its admin API. `instance` names this replica in
    /// the Events it publishes.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self::with_topics(client, instance, Arc::new(KafkaTopics))
    }

    /// A context that reaches the topics through `topics`.
    pub fn with_topics(client: Client, instance: Option<String>, topics: Arc<dyn TopicAdmin>) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance };
        Self { recorder: Recorder::new(client.clone(), reporter), client, topics }
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
                Err(err) => tracing::warn!(error = %error_chain(&err), "reconcile failed"),
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
    let result = finalizer::finalizer(&api, FINALIZER, system, |event| async {
        match event {
            FinalizerEvent::Apply(system) => run_pipeline(&system, &ctx).await,
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
    tracing::warn!(system = %system.name_any(), reason = error.reason(), error = %error_chain(error), "reconcile failed; retrying");
    metrics::counter!("ordexa_operator_reconcile_errors_total", "reason" => error.reason()).increment(1);
    Action::requeue(RETRY_AFTER_ERROR)
}

/// The pipeline for a live OrderingSystem: build, converge (or only observe, when paused),
/// status, Events.
async fn run_pipeline(system: &OrderingSystem, ctx: &Context) -> Result<Action, Error> {
    let desired = build::desired(system).map_err(Error::Build)?;
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let mut applier = Applier::new(ctx.client.clone(), &namespace, system);
    let (observed, topic_changes) = if system.spec.paused {
        (observe_paused(system, ctx, &applier, &desired).await?, Vec::new())
    } else {
        converge(system, ctx, &mut applier, &desired).await?
    };

    let update = conditions::status(&observed, system.status.as_ref(), Timestamp::now());
    if system.status.as_ref() != Some(&update.status) {
        write_status(system, ctx, &namespace, &update).await?;
    }
    // Events go out once the status they describe is written.
    let mut events: Vec<Event> =
        topic_changes.iter().map(|change| normal_event(change.reason(), change.action(), change.note())).collect();
    events.extend(
        applier.into_changes().iter().map(|change| normal_event(change.reason(), change.action(), change.note())),
    );
    events.extend(update.changed.iter().map(condition_event));
    publish_events(ctx, system, events).await;
    Ok(Action::requeue(if update.ready || system.spec.paused { RESYNC_READY } else { RESYNC_PROGRESSING }))
}

/// Makes Kafka and the cluster match the spec, step by step: topics, then the migration Job,
/// then the schema Job, then the workloads, each only once the step before it is done.
async fn converge(
    system: &OrderingSystem,
    ctx: &Context,
    applier: &mut Applier<'_>,
    desired: &Desired,
) -> Result<(Observed, Vec<TopicChange>), Error> {
    let prefix = system.topic_prefix();
    let (topics, topic_changes) = match ctx.topics.ensure(&system.spec.kafka, &prefix).await {
        Ok(outcome) => (outcome.state, outcome.changes),
        Err(err) => (TopicsState::Failed { message: err.to_string() }, Vec::new()),
    };
    // Without topics the relay and projector cannot start: nothing further is created.
    let topics_exist = matches!(topics, TopicsState::Ready { .. } | TopicsState::ShrinkRefused { .. });

    let migrate = if topics_exist {
        applier.ensure_job(JobRole::Migration, &desired.migrate_job).await?
    } else {
        applier.job_state(JobRole::Migration, &desired.migrate_job).await?
    };
    let schema = if topics_exist && migrate.succeeded() {
        applier.ensure_job(JobRole::CassandraSchema, &desired.schema_job).await?
    } else {
        applier.job_state(JobRole::CassandraSchema, &desired.schema_job).await?
    };
    let workloads = if migrate.succeeded() && schema.succeeded() {
        applier.roll_out(desired).await?
    } else {
        applier.observe_workloads(desired).await?
    };
    let observed = Observed {
        generation: system.metadata.generation,
        paused: false,
        image: system.spec.image.clone(),
        topics,
        migrate,
        schema,
        workloads,
    };
    Ok((observed, topic_changes))
}

/// Paused: read everything, change nothing.
async fn observe_paused(
    system: &OrderingSystem,
    ctx: &Context,
    applier: &Applier<'_>,
    desired: &Desired,
) -> Result<Observed, Error> {
    let topics = ctx
        .topics
        .inspect(&system.spec.kafka, &system.topic_prefix())
        .await
        .unwrap_or_else(|err| TopicsState::Failed { message: err.to_string() });
    Ok(Observed {
        generation: system.metadata.generation,
        paused: true,
        image: system.spec.image.clone(),
        topics,
        migrate: applier.job_state(JobRole::Migration, &desired.migrate_job).await?,
        schema: applier.job_state(JobRole::CassandraSchema, &desired.schema_job).await?,
        workloads: applier.observe_workloads(desired).await?,
    })
}

async fn write_status(
    system: &OrderingSystem,
    ctx: &Context,
    namespace: &str,
    update: &StatusUpdate,
) -> Result<(), Error> {
    let api: Api<OrderingSystem> = Api::namespaced(ctx.client.clone(), namespace);
    let name = system.name_any();
    let patch = serde_json::json!({ "status": update.status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::PatchStatus { name, source })?;
    Ok(())
}

/// Applies the topic deletion policy; the finalizer is removed once this succeeds.
async fn cleanup(system: &OrderingSystem, ctx: &Context) -> Result<Action, Error> {
    let kafka = &system.spec.kafka;
    let prefix = system.topic_prefix();
    let topics = topics::topic_names(&prefix).join(", ");
    let (reason, note) = match kafka.topic_deletion_policy {
        TopicDeletionPolicy::Retain => {
            ("TopicsRetained", format!("topics {topics} are kept (topicDeletionPolicy Retain)"))
        }
        TopicDeletionPolicy::Delete => {
            ctx.topics
                .delete(kafka, &prefix)
                .await
                .map_err(|source| Error::DeleteTopics { topics: topics.clone(), source })?;
            ("TopicsDeleted", format!("deleted topics {topics}"))
        }
    };
    tracing::info!(system = %system.name_any(), reason, "{note}");
    publish_events(ctx, system, [normal_event(reason, "Delete", note)]).await;
    Ok(Action::await_change())
}

/// The Event for a condition that changed: a Warning when its reason is a failure.
fn condition_event(changed: &ChangedCondition) -> Event {
    Event {
        type_: changed.reason.event_type(),
        reason: changed.reason.as_str().to_owned(),
        note: Some(format!("{}: {}", changed.type_, changed.message)),
        action: "UpdateStatus".to_owned(),
        secondary: None,
    }
}

fn normal_event(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    }
}

/// Publishes `events` on the system. An Event that cannot be published is logged, never fails
/// the reconcile: Events are a courtesy, the status is the record.
async fn publish_events(ctx: &Context, system: &OrderingSystem, events: impl IntoIterator<Item = Event>) {
    let reference = system.object_ref(&());
    for event in events {
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, reason = %event.reason, "could not publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reconcile's decisions against a mocked API server (see `fixtures`): each test names
    //! a [`Scenario`], runs one pass and lets the verifier check every request it made.

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::fixtures::{FakeTopics, JobFixture, Live, Scenario, timeout_after_1s};

    const NEW_IMAGE: &str = "registry.example/ordexa:0.2.0";

    /// Runs one pass of `system` against `scenario`; returns the pass's outcome.
    async fn pass(system: OrderingSystem, scenario: impl FnOnce(OrderingSystem) -> Scenario) -> Action {
        let (ctx, server) = Context::test();
        let verifier = server.run(scenario(system.clone()));
        let action = reconcile(Arc::new(system), ctx).await.expect("the pass succeeds");
        timeout_after_1s(verifier).await;
        action
    }

    #[tokio::test]
    async fn a_new_system_gets_the_finalizer_and_nothing_else() {
        let action = pass(OrderingSystem::test(), Scenario::FinalizerAdded).await;
        assert_eq!(action, Action::await_change());
    }

    #[tokio::test]
    async fn a_running_migration_job_holds_the_rollout() {
        let system = OrderingSystem::test().finalized();
        let migrate = system.desired().migrate_job.running();
        let action = pass(system, |system| Scenario::MigrationsPending { system, migrate }).await;
        assert_eq!(action, Action::requeue(RESYNC_PROGRESSING));
    }

    #[tokio::test]
    async fn a_failed_migration_job_is_named_in_the_status_with_warnings_and_nothing_rolls_out() {
        let system = OrderingSystem::test().finalized();
        let migrate =
            system.desired().migrate_job.failed("BackoffLimitExceeded", "Job has reached the specified backoff limit");
        pass(system, |system| Scenario::MigrationFailed { system, migrate }).await;
    }

    #[tokio::test]
    async fn a_new_image_applies_its_migration_job_and_leaves_the_old_deployments_alone() {
        let old = OrderingSystem::test().finalized().with_ready_status();
        let system = old.clone().with_image(NEW_IMAGE);
        assert_ne!(old.desired().migrate_job.name_any(), system.desired().migrate_job.name_any());
        let running = Live::of(&old).deployments;
        pass(system, |system| Scenario::NewImage { system, running }).await;
    }

    #[tokio::test]
    async fn a_migrated_new_image_applies_its_schema_job_and_still_leaves_the_old_deployments_alone() {
        let old = OrderingSystem::test().finalized().with_ready_status();
        let system = old.clone().with_image(NEW_IMAGE);
        assert_ne!(old.desired().schema_job.name_any(), system.desired().schema_job.name_any());
        let migrate = system.desired().migrate_job.succeeded();
        let running = Live::of(&old).deployments;
        pass(system, |system| Scenario::NewImageMigrated { system, migrate, running }).await;
    }

    #[tokio::test]
    async fn both_jobs_succeeded_roll_out_the_config_map_deployments_and_services() {
        let system = OrderingSystem::test().finalized();
        let desired = system.desired();
        let (migrate, schema) = (desired.migrate_job.succeeded(), desired.schema_job.succeeded());
        pass(system, |system| Scenario::RollOut { system, migrate, schema }).await;
    }

    #[tokio::test]
    async fn an_upgrade_applies_only_the_deployments_and_deletes_the_old_images_jobs() {
        let old = OrderingSystem::test().finalized().with_ready_status();
        let system = old.clone().with_image(NEW_IMAGE);
        let (before, after) = (old.desired(), system.desired());
        let jobs = vec![
            before.migrate_job.succeeded(),
            before.schema_job.succeeded(),
            after.migrate_job.succeeded(),
            after.schema_job.succeeded(),
        ];
        let live = Live::of(&old);
        pass(system, |system| Scenario::Upgrade { system, jobs, live }).await;
    }

    #[tokio::test]
    async fn the_status_is_patched_with_the_observed_generation() {
        let system = OrderingSystem::test().finalized().with_generation(7);
        let desired = system.desired();
        let jobs = vec![desired.migrate_job.succeeded(), desired.schema_job.succeeded()];
        let live = Live::of(&system);
        let action = pass(system, |system| Scenario::StatusPatch { system, jobs, live }).await;
        assert_eq!(action, Action::requeue(RESYNC_READY));
    }

    #[tokio::test]
    async fn an_idle_ready_system_is_only_read() {
        let system = OrderingSystem::test().finalized().with_ready_status();
        let desired = system.desired();
        let jobs = vec![desired.migrate_job.succeeded(), desired.schema_job.succeeded()];
        let live = Live::of(&system);
        let action = pass(system, |system| Scenario::Idle { system, jobs, live }).await;
        assert_eq!(action, Action::requeue(RESYNC_READY));
    }

    #[tokio::test]
    async fn a_paused_system_is_read_and_reported_never_changed() {
        let topics = Arc::new(FakeTopics::default());
        let (ctx, server) = Context::test_with(topics.clone());
        let system = OrderingSystem::test().finalized().paused();
        let verifier = server.run(Scenario::Paused(system.clone()));
        let action = reconcile(Arc::new(system), ctx).await.expect("the pass succeeds");
        timeout_after_1s(verifier).await;
        assert_eq!(topics.ensure_calls.load(Ordering::SeqCst), 0, "a paused pass must not create topics");
        assert_eq!(action, Action::requeue(RESYNC_READY));
    }

    #[tokio::test]
    async fn deleting_a_system_retains_its_topics_and_removes_the_finalizer() {
        let action = pass(OrderingSystem::test().finalized().deleted(), Scenario::Cleanup).await;
        assert_eq!(action, Action::await_change());
    }

    #[tokio::test]
    async fn a_failed_request_names_the_step_and_keeps_the_cause() {
        let (ctx, server) = Context::test();
        let system = OrderingSystem::test().finalized();
        // The API server goes away before the first request is answered.
        drop(server);
        let err = reconcile(Arc::new(system.clone()), ctx).await.expect_err("the pass fails");
        let migrate = system.desired().migrate_job.name_any();
        assert!(
            matches!(
                &err,
                Error::Finalizer(inner) if matches!(
                    inner.as_ref(),
                    finalizer::Error::ApplyFailed(Error::Apply(apply::Error::ReadMigrationJob { name, .. })) if *name == migrate
                )
            ),
            "{err:?}"
        );
        assert_eq!(err.reason(), "ApiRequestFailed");
        let text = error_chain(&err);
        assert!(text.contains(&format!("failed to read the migration Job {migrate}: ")), "{text}");
    }
}
