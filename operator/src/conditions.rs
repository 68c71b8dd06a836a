//! Status step (pure, no server): the status an `OrderingSystem` reports, computed from what
//! the reconcile observed. One condition per concern, each with a machine reason and a message
//! a person can act on; `lastTransitionTime` is kept while a condition's status holds, so an
//! unchanged system produces an identical status and no write.
//!
//! Reasons are a closed set ([`Reason`]): each knows its string form and whether the Event for
//! a condition that changed to it is a Warning (something failed that a person must look at)
//! or Normal (progress, or all is well).

use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use crate::build::Workload;
use crate::crd::OrderingSystemStatus;

pub const READY: &str = "Ready";
pub const TOPICS_READY: &str = "TopicsReady";
pub const DATABASE_MIGRATED: &str = "DatabaseMigrated";
pub const CASSANDRA_SCHEMA_READY: &str = "CassandraSchemaReady";

/// The availability condition type of a workload.
pub fn available_type(workload: Workload) -> &'static str {
    match workload {
        Workload::Api => "ApiAvailable",
        Workload::Relay => "RelayAvailable",
        Workload::Projector => "ProjectorAvailable",
        Workload::Frontend => "FrontendAvailable",
    }
}

/// The machine reason of a condition: the `reason` field, and the reason of the Event published
/// when a condition changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `TopicsReady`: both topics exist with the requested partitions.
    TopicsReady,
    /// `TopicsReady`: the spec asks for fewer partitions than a topic has.
    PartitionDecreaseRefused,
    /// `TopicsReady`: Kafka's admin API failed.
    KafkaAdminFailed,
    /// `TopicsReady` while paused: the topics do not match the spec yet.
    TopicsPending,
    /// A migration or schema Job of the current image succeeded.
    JobSucceeded,
    /// A migration or schema Job of the current image is running.
    JobRunning,
    /// A migration or schema Job of the current image failed.
    JobFailed,
    /// The schema Job waits for the migration Job.
    WaitingForMigration,
    /// The Job has not been created yet.
    NotStarted,
    /// A workload turned off in the spec.
    Disabled,
    /// A workload waits for the Jobs of the current image.
    WaitingForMigrations,
    /// A Deployment is rolling out.
    RollingOut,
    /// Fewer pods are available than desired.
    ReplicasUnavailable,
    /// A workload scaled to 0 replicas.
    ScaledToZero,
    /// Every desired pod is available.
    MinimumReplicasAvailable,
    /// `Ready` of a paused system.
    Paused,
    /// `Ready`: everything is ready.
    AllComponentsReady,
}

impl Reason {
    /// The `reason` string on the condition and its Event.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TopicsReady => "TopicsReady",
            Reason::PartitionDecreaseRefused => "PartitionDecreaseRefused",
            Reason::KafkaAdminFailed => "KafkaAdminFailed",
            Reason::TopicsPending => "TopicsPending",
            Reason::JobSucceeded => "JobSucceeded",
            Reason::JobRunning => "JobRunning",
            Reason::JobFailed => "JobFailed",
            Reason::WaitingForMigration => "WaitingForMigration",
            Reason::NotStarted => "NotStarted",
            Reason::Disabled => "Disabled",
            Reason::WaitingForMigrations => "WaitingForMigrations",
            Reason::RollingOut => "RollingOut",
            Reason::ReplicasUnavailable => "ReplicasUnavailable",
            Reason::ScaledToZero => "ScaledToZero",
            Reason::MinimumReplicasAvailable => "MinimumReplicasAvailable",
            Reason::Paused => "Paused",
            Reason::AllComponentsReady => "AllComponentsReady",
        }
    }

    /// The type of the Event for a condition that changed to this reason: Warning for what
    /// failed or needs a person; Normal for success, pauses and progress notes (a running Job
    /// or a rollout is not worth a warning).
    pub const fn event_type(self) -> EventType {
        match self {
            Reason::PartitionDecreaseRefused
            | Reason::KafkaAdminFailed
            | Reason::TopicsPending
            | Reason::JobFailed
            | Reason::ReplicasUnavailable => EventType::Warning,
            Reason::TopicsReady
            | Reason::JobSucceeded
            | Reason::JobRunning
            | Reason::WaitingForMigration
            | Reason::NotStarted
            | Reason::Disabled
            | Reason::WaitingForMigrations
            | Reason::RollingOut
            | Reason::ScaledToZero
            | Reason::MinimumReplicasAvailable
            | Reason::Paused
            | Reason::AllComponentsReady => EventType::Normal,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the topics step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicsState {
    /// Both topics exist with the requested partitions.
    Ready { partitions: i32 },
    /// The spec asks for fewer partitions than the topic has; Kafka cannot shrink a topic.
    ShrinkRefused { topic: String, current: i32, requested: i32 },
    /// The admin API failed (broker unreachable, authorisation, …).
    Failed { message: String },
    /// Paused: the topics do not match the spec yet; they are made so on resume.
    Pending { message: String },
}

/// What a migration or schema Job is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not created (paused, or waiting for an earlier step).
    NotCreated,
    Running {
        job: String,
    },
    Succeeded {
        job: String,
    },
    Failed {
        job: String,
        message: String,
    },
}

impl JobState {
    /// Reads a Job's outcome from its status conditions.
    pub fn of(job: &Job) -> Self {
        let name = job.metadata.name.clone().unwrap_or_default();
        let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
        let holds = |kind: &str| conditions.and_then(|cs| cs.iter().find(|c| c.type_ == kind && c.status == "True"));
        if holds("Complete").is_some() {
            JobState::Succeeded { job: name }
        } else if let Some(failed) = holds("Failed") {
            let message =
                failed.message.clone().or_else(|| failed.reason.clone()).unwrap_or_else(|| "the Job failed".to_owned());
            JobState::Failed { job: name, message }
        } else {
            JobState::Running { job: name }
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self, JobState::Succeeded { .. })
    }
}

/// What a workload's Deployment reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadState {
    /// Turned off in the spec.
    Disabled,
    /// Not rolled out: waiting for the migrations of the current image.
    Waiting,
    /// The Deployment exists; numbers from its status.
    Deployed { desired: i32, available: i32, updated: i32, current_generation: bool },
}

impl WorkloadState {
    /// Reads a Deployment's rollout from its status. `desired` is the replica count the spec
    /// (or the autoscaler) set.
    pub fn of(deployment: &Deployment) -> Self {
        let desired = deployment.spec.replicas.unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        WorkloadState::Deployed {
            desired,
            available: status.available_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            current_generation: status.observed_generation.is_some()
                && status.observed_generation >= deployment.metadata.generation,
        }
    }

    fn summary(&self) -> Option<String> {
        match self {
            WorkloadState::Deployed { desired, available, .. } => Some(format!("{available}/{desired}")),
            WorkloadState::Waiting => Some("0/0".to_owned()),
            WorkloadState::Disabled => None,
        }
    }
}

/// Everything one reconcile pass observed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub generation: Option<i64>,
    pub paused: bool,
    pub image: String,
    pub topics: TopicsState,
    pub migrate: JobState,
    pub schema: JobState,
    pub workloads: Vec<(Workload, WorkloadState)>,
}

/// A condition that is new or whose status or reason changed: one Event each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCondition {
    pub type_: &'static str,
    pub reason: Reason,
    pub message: String,
}

/// What one pass reports: the status to write, whether the system is Ready, and the conditions
/// that changed since the previous status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: OrderingSystemStatus,
    pub ready: bool,
    pub changed: Vec<ChangedCondition>,
}

/// The status for `observed`, keeping `lastTransitionTime` (and the last known topic partitions
/// and migrated image) from `previous` where nothing changed.
pub fn status(observed: &Observed, previous: Option<&OrderingSystemStatus>, now: Timestamp) -> StatusUpdate {
    let mut drafts = vec![
        topics_condition(&observed.topics),
        migration_condition(DATABASE_MIGRATED, "migration", &observed.migrate, None),
        migration_condition(CASSANDRA_SCHEMA_READY, "Cassandra schema", &observed.schema, Some(&observed.migrate)),
    ];
    for (workload, state) in &observed.workloads {
        drafts.push(workload_condition(*workload, state));
    }
    let ready = ready_condition(observed, &drafts);
    let is_ready = ready.ok;
    drafts.insert(0, ready);

    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let changed = drafts
        .iter()
        .filter(|draft| !draft.holds_in(previous_conditions))
        .map(|draft| ChangedCondition { type_: draft.type_, reason: draft.reason, message: draft.message.clone() })
        .collect();
    let conditions =
        drafts.into_iter().map(|draft| draft.into_condition(observed.generation, previous_conditions, now)).collect();

    let summary = |w: Workload| observed.workloads.iter().find(|(x, _)| *x == w).and_then(|(_, state)| state.summary());
    let migrated_image = if observed.migrate.succeeded() && observed.schema.succeeded() {
        Some(observed.image.clone())
    } else {
        previous.and_then(|p| p.migrated_image.clone())
    };
    let topic_partitions = match &observed.topics {
        TopicsState::Ready { partitions } => Some(*partitions),
        TopicsState::ShrinkRefused { current, .. } => Some(*current),
        _ => previous.and_then(|p| p.topic_partitions),
    };
    let status = OrderingSystemStatus {
        observed_generation: observed.generation,
        conditions,
        migrated_image,
        topic_partitions,
        api: summary(Workload::Api),
        relay: summary(Workload::Relay),
        projector: summary(Workload::Projector),
        frontend: summary(Workload::Frontend),
    };
    StatusUpdate { status, ready: is_ready, changed }
}

/// A condition before its timestamps are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Draft {
    type_: &'static str,
    ok: bool,
    reason: Reason,
    message: String,
}

impl Draft {
    fn new(type_: &'static str, ok: bool, reason: Reason, message: impl Into<String>) -> Self {
        Self { type_, ok, reason, message: message.into() }
    }

    fn status(&self) -> &'static str {
        if self.ok { "True" } else { "False" }
    }

    /// Whether `previous` already has this condition with the same status and reason.
    fn holds_in(&self, previous: &[Condition]) -> bool {
        previous.iter().any(|c| c.type_ == self.type_ && c.status == self.status() && c.reason == self.reason.as_str())
    }

    fn into_condition(self, generation: Option<i64>, previous: &[Condition], now: Timestamp) -> Condition {
        let status = self.status().to_owned();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == self.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: self.type_.to_owned(),
            status,
            reason: self.reason.as_str().to_owned(),
            message: self.message,
            observed_generation: generation,
            last_transition_time,
        }
    }
}

fn topics_condition(topics: &TopicsState) -> Draft {
    match topics {
        TopicsState::Ready { partitions } => Draft::new(
            TOPICS_READY,
            true,
            Reason::TopicsReady,
            format!("the orders topic and its DLQ have {partitions} partitions"),
        ),
        TopicsState::ShrinkRefused { topic, current, requested } => Draft::new(
            TOPICS_READY,
            false,
            Reason::PartitionDecreaseRefused,
            format!(
                "topic {topic} has {current} partitions and Kafka cannot remove partitions; set spec.kafka.partitions to {current} or more (asked for {requested})"
            ),
        ),
        TopicsState::Failed { message } => Draft::new(
            TOPICS_READY,
            false,
            Reason::KafkaAdminFailed,
            format!(
                "could not create or check the topics: {message}; check spec.kafka.bootstrapServers and that the brokers are reachable from the operator"
            ),
        ),
        TopicsState::Pending { message } => Draft::new(TOPICS_READY, false, Reason::TopicsPending, message.clone()),
    }
}

fn migration_condition(type_: &'static str, what: &str, state: &JobState, before: Option<&JobState>) -> Draft {
    match state {
        JobState::Succeeded { job } => {
            Draft::new(type_, true, Reason::JobSucceeded, format!("the {what} Job {job} succeeded"))
        }
        JobState::Running { job } => Draft::new(
            type_,
            false,
            Reason::JobRunning,
            format!("the {what} Job {job} is running; workloads roll out after it succeeds"),
        ),
        JobState::Failed { job, message } => Draft::new(
            type_,
            false,
            Reason::JobFailed,
            format!(
                "the {what} Job {job} failed ({message}); see `kubectl logs job/{job}`, fix the cause, then delete the Job to run it again"
            ),
        ),
        JobState::NotCreated => match before {
            Some(earlier) if !earlier.succeeded() => {
                Draft::new(type_, false, Reason::WaitingForMigration, "waits for the database migration Job to succeed")
            }
            _ => Draft::new(type_, false, Reason::NotStarted, format!("the {what} Job has not been created yet")),
        },
    }
}

fn workload_condition(workload: Workload, state: &WorkloadState) -> Draft {
    let type_ = available_type(workload);
    let name = workload.component();
    match state {
        WorkloadState::Disabled => {
            Draft::new(type_, true, Reason::Disabled, format!("the {name} is turned off in the spec"))
        }
        WorkloadState::Waiting => Draft::new(
            type_,
            false,
            Reason::WaitingForMigrations,
            format!("the {name} rolls out after the migration and schema Jobs of the current image succeed"),
        ),
        WorkloadState::Deployed { desired, available, updated, current_generation } => {
            if !current_generation || updated < desired {
                Draft::new(
                    type_,
                    false,
                    Reason::RollingOut,
                    format!("the {name} Deployment is rolling out ({updated}/{desired} pods updated)"),
                )
            } else if available < desired {
                Draft::new(
                    type_,
                    false,
                    Reason::ReplicasUnavailable,
                    format!(
                        "{available}/{desired} {name} pods are available; see `kubectl describe deployment` for the pods' probes and events"
                    ),
                )
            } else if *desired == 0 {
                Draft::new(type_, true, Reason::ScaledToZero, format!("the {name} is scaled to 0 replicas"))
            } else {
                Draft::new(
                    type_,
                    true,
                    Reason::MinimumReplicasAvailable,
                    format!("{available}/{desired} {name} pods are available"),
                )
            }
        }
    }
}

fn ready_condition(observed: &Observed, conditions: &[Draft]) -> Draft {
    if observed.paused {
        return Draft::new(
            READY,
            false,
            Reason::Paused,
            "spec.paused is true: nothing is changed until it is set to false",
        );
    }
    match conditions.iter().find(|c| !c.ok) {
        None => Draft::new(READY, true, Reason::AllComponentsReady, "topics, migrations and every workload are ready"),
        Some(first) => Draft::new(READY, false, first.reason, format!("{}: {}", first.type_, first.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Observed {
        Observed {
            generation: Some(4),
            paused: false,
            image: "ordexa:1".to_owned(),
            topics: TopicsState::Ready { partitions: 6 },
            migrate: JobState::Succeeded { job: "shop-migrate-1".to_owned() },
            schema: JobState::Succeeded { job: "shop-cassandra-schema-1".to_owned() },
            workloads: Workload::ALL
                .iter()
                .map(|w| {
                    (*w, WorkloadState::Deployed { desired: 2, available: 2, updated: 2, current_generation: true })
                })
                .collect(),
        }
    }

    fn condition<'a>(status: &'a OrderingSystemStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).expect("condition present")
    }

    #[test]
    fn a_healthy_system_is_ready_with_every_contract_condition() {
        let status = status(&healthy(), None, Timestamp::UNIX_EPOCH).status;
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "Ready",
                "TopicsReady",
                "DatabaseMigrated",
                "CassandraSchemaReady",
                "ApiAvailable",
                "RelayAvailable",
                "ProjectorAvailable",
                "FrontendAvailable"
            ]
        );
        assert!(status.conditions.iter().all(|c| c.status == "True" && !c.reason.is_empty() && !c.message.is_empty()));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.api.as_deref(), Some("2/2"));
        assert_eq!(status.migrated_image.as_deref(), Some("ordexa:1"));
    }

    #[test]
    fn a_failed_migration_names_the_job_and_holds_the_workloads() {
        let mut observed = healthy();
        observed.migrate =
            JobState::Failed { job: "shop-migrate-abc".to_owned(), message: "BackoffLimitExceeded".to_owned() };
        observed.schema = JobState::NotCreated;
        observed.workloads = Workload::ALL.iter().map(|w| (*w, WorkloadState::Waiting)).collect();
        let status = status(&observed, None, Timestamp::UNIX_EPOCH).status;
        let migrated = condition(&status, DATABASE_MIGRATED);
        assert_eq!((migrated.status.as_str(), migrated.reason.as_str()), ("False", "JobFailed"));
        assert!(migrated.message.contains("shop-migrate-abc"), "{}", migrated.message);
        assert_eq!(condition(&status, CASSANDRA_SCHEMA_READY).reason, "WaitingForMigration");
        assert_eq!(condition(&status, "ApiAvailable").reason, "WaitingForMigrations");
        let ready = condition(&status, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "JobFailed"));
        assert_eq!(status.migrated_image, None);
    }

    #[test]
    fn a_partition_decrease_is_reported_not_ignored() {
        let mut observed = healthy();
        observed.topics = TopicsState::ShrinkRefused { topic: "shop.orders".to_owned(), current: 12, requested: 6 };
        let status = status(&observed, None, Timestamp::UNIX_EPOCH).status;
        let topics = condition(&status, TOPICS_READY);
        assert_eq!((topics.status.as_str(), topics.reason.as_str()), ("False", "PartitionDecreaseRefused"));
        assert!(
            topics.message.contains("12") && topics.message.contains("spec.kafka.partitions"),
            "{}",
            topics.message
        );
        assert_eq!(condition(&status, READY).status, "False");
        assert_eq!(status.topic_partitions, Some(12));
    }

    #[test]
    fn an_unchanged_observation_gives_an_identical_status() {
        let first = status(&healthy(), None, Timestamp::UNIX_EPOCH).status;
        let later = Timestamp::from_second(1_000_000).expect("valid timestamp");
        let second = status(&healthy(), Some(&first), later).status;
        assert_eq!(first, second, "no change must mean no status write");
    }

    #[test]
    fn a_transition_moves_only_the_changed_conditions_time() {
        let first = status(&healthy(), None, Timestamp::UNIX_EPOCH).status;
        let mut observed = healthy();
        observed.workloads[1].1 =
            WorkloadState::Deployed { desired: 2, available: 1, updated: 2, current_generation: true };
        let later = Timestamp::from_second(1_000_000).expect("valid timestamp");
        let second = status(&observed, Some(&first), later).status;
        assert_eq!(condition(&second, "RelayAvailable").last_transition_time, Time(later));
        assert_eq!(condition(&second, "RelayAvailable").reason, "ReplicasUnavailable");
        assert_eq!(condition(&second, "ApiAvailable").last_transition_time, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(second.relay.as_deref(), Some("1/2"));
    }

    #[test]
    fn a_rollout_in_progress_is_not_available() {
        let mut observed = healthy();
        observed.workloads[0].1 =
            WorkloadState::Deployed { desired: 2, available: 2, updated: 1, current_generation: true };
        let status = status(&observed, None, Timestamp::UNIX_EPOCH).status;
        assert_eq!(condition(&status, "ApiAvailable").reason, "RollingOut");
    }

    #[test]
    fn a_paused_system_says_so() {
        let mut observed = healthy();
        observed.paused = true;
        let status = status(&observed, None, Timestamp::UNIX_EPOCH).status;
        let ready = condition(&status, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Paused"));
        assert!(ready.message.contains("spec.paused"));
    }

    #[test]
    fn an_unchanged_observation_changes_no_condition_and_a_failure_changes_two() {
        let first = status(&healthy(), None, Timestamp::UNIX_EPOCH);
        assert_eq!(first.changed.len(), 8, "every condition is new on the first pass");
        assert!(first.ready);
        assert!(status(&healthy(), Some(&first.status), Timestamp::UNIX_EPOCH).changed.is_empty());

        let mut observed = healthy();
        observed.migrate = JobState::Failed { job: "shop-migrate-1".to_owned(), message: "exit 1".to_owned() };
        let failed = status(&observed, Some(&first.status), Timestamp::UNIX_EPOCH);
        assert!(!failed.ready);
        let changed: Vec<_> = failed.changed.iter().map(|c| (c.type_, c.reason)).collect();
        assert_eq!(changed, [(READY, Reason::JobFailed), (DATABASE_MIGRATED, Reason::JobFailed)]);
    }

    #[test]
    fn failures_are_warnings_and_progress_is_normal() {
        for reason in [
            Reason::JobFailed,
            Reason::KafkaAdminFailed,
            Reason::PartitionDecreaseRefused,
            Reason::ReplicasUnavailable,
            Reason::TopicsPending,
        ] {
            assert_eq!(reason.event_type(), EventType::Warning, "{reason}");
        }
        for reason in [
            Reason::JobRunning,
            Reason::RollingOut,
            Reason::WaitingForMigration,
            Reason::WaitingForMigrations,
            Reason::NotStarted,
            Reason::Paused,
            Reason::AllComponentsReady,
            Reason::JobSucceeded,
        ] {
            assert_eq!(reason.event_type(), EventType::Normal, "{reason}");
        }
        assert_eq!(Reason::PartitionDecreaseRefused.to_string(), "PartitionDecreaseRefused");
    }

    #[test]
    fn job_outcomes_are_read_from_job_conditions() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop-migrate-1"},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }))
        .expect("job parses");
        assert_eq!(
            JobState::of(&job),
            JobState::Failed {
                job: "shop-migrate-1".to_owned(),
                message: "Job has reached the specified backoff limit".to_owned()
            }
        );
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop-migrate-1"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .expect("job parses");
        assert!(JobState::of(&job).succeeded());
    }
}
