//! Test fixtures (tests only): fluent builders for OrderingSystems and the objects they own, a
//! fake Kafka, and [`ApiServerVerifier`], a mocked API server that expects a reconcile's
//! requests in the order a [`Scenario`] names them, asserts each one (method, path and the
//! parts of the body that matter) and answers as the API server would.
//!
//! A reconcile that sends a request the scenario does not expect fails the scenario; one that
//! stops short of it times the scenario out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::events::EventType;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::apply::{APPLIED_HASH_ANNOTATION, FIELD_MANAGER, content_hash};
use crate::build::{self, Desired, Workload};
use crate::conditions::{self, JobState, Observed, TopicsState, WorkloadState};
use crate::controller::{Context, FINALIZER};
use crate::crd::{KafkaSpec, OrderingSystem, OrderingSystemStatus};
use crate::topics::{TopicAdmin, TopicError, TopicsOutcome};

/// The namespace of every fixture.
pub const NAMESPACE: &str = "shop";
/// The image of [`OrderingSystem::test`].
pub const IMAGE: &str = "registry.example/ordexa:0.1.0";

impl OrderingSystem {
    /// The contract's smallest manifest (`fixtures/minimal.yaml`) as the API server returns
    /// it: in namespace `shop`, with a uid and generation 1; not finalized yet.
    pub fn test() -> Self {
        OrderingSystem::from_yaml(include_str!("../fixtures/minimal.yaml")).expect("the minimal fixture parses")
    }

    /// Carries the operator's finalizer (every pass after the first).
    pub fn finalized(mut self) -> Self {
        self.finalizers_mut().push(FINALIZER.to_owned());
        self
    }

    /// A new image, as `kubectl apply` would set it: the generation moves on.
    pub fn with_image(mut self, image: &str) -> Self {
        self.spec.image = image.to_owned();
        self.metadata.generation = Some(self.metadata.generation.unwrap_or(0) + 1);
        self
    }

    pub fn with_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    pub fn paused(mut self) -> Self {
        self.spec.paused = true;
        self
    }

    /// `kubectl delete` was called: the finalizer holds it.
    pub fn deleted(mut self) -> Self {
        self.meta_mut().deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        self
    }

    /// The status of a pass that found this spec fully rolled out and available (as of the
    /// Unix epoch).
    pub fn with_ready_status(mut self) -> Self {
        let desired = self.desired();
        let observed = Observed {
            generation: self.metadata.generation,
            paused: false,
            image: self.spec.image.clone(),
            topics: TopicsState::Ready { partitions: self.spec.kafka.partitions },
            migrate: JobState::Succeeded { job: desired.migrate_job.name_any() },
            schema: JobState::Succeeded { job: desired.schema_job.name_any() },
            workloads: desired
                .deployments
                .iter()
                .map(|(w, d)| (*w, WorkloadState::of(&d.clone().available())))
                .collect(),
        };
        self.status = Some(conditions::status(&observed, None, Timestamp::UNIX_EPOCH).status);
        self
    }

    /// What the build step makes of it.
    pub fn desired(&self) -> Desired {
        build::desired(self).expect("the fixture builds")
    }
}

/// Job states as the Job controller reports them.
pub trait JobFixture: Sized {
    /// A pod is running.
    fn running(self) -> Self;
    /// `Complete=True`.
    fn succeeded(self) -> Self;
    /// `Failed=True` with `reason` and `message`.
    fn failed(self, reason: &str, message: &str) -> Self;
}

impl JobFixture for Job {
    fn running(mut self) -> Self {
        self.status = Some(serde_json::from_value(json!({"active": 1})).expect("a Job status"));
        self
    }

    fn succeeded(mut self) -> Self {
        self.status = Some(
            serde_json::from_value(json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}))
                .expect("a Job status"),
        );
        self
    }

    fn failed(mut self, reason: &str, message: &str) -> Self {
        self.status = Some(
            serde_json::from_value(json!({"failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": message}
            ]}))
            .expect("a Job status"),
        );
        self
    }
}

/// A Deployment whose pods are all updated and available.
pub trait DeploymentFixture: Sized {
    fn available(self) -> Self;
}

impl DeploymentFixture for Deployment {
    fn available(mut self) -> Self {
        let replicas = self.spec.replicas.unwrap_or(1);
        self.metadata.generation = Some(1);
        self.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(replicas),
            available_replicas: Some(replicas),
            ..DeploymentStatus::default()
        });
        self
    }
}

/// An object as the operator left it: carrying the hash of what it applied. Call it on the
/// object as built, before adding a status.
pub trait AppliedFixture: Resource + Serialize + Sized {
    fn applied(mut self) -> Self {
        let hash = content_hash(&self).expect("the object serialises");
        self.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_owned(), hash);
        self
    }
}

impl<K: Resource + Serialize> AppliedFixture for K {}

/// Kafka with both topics as the spec asks; counts the calls that could change them.
#[derive(Debug, Default)]
pub struct FakeTopics {
    pub ensure_calls: AtomicUsize,
}

impl TopicAdmin for FakeTopics {
    fn ensure<'a>(
        &'a self,
        kafka: &'a KafkaSpec,
        _prefix: &'a str,
    ) -> BoxFuture<'a, Result<TopicsOutcome, TopicError>> {
        self.ensure_calls.fetch_add(1, Ordering::SeqCst);
        let outcome = TopicsOutcome { state: TopicsState::Ready { partitions: kafka.partitions }, changes: Vec::new() };
        async move { Ok(outcome) }.boxed()
    }

    fn inspect<'a>(&'a self, kafka: &'a KafkaSpec, _prefix: &'a str) -> BoxFuture<'a, Result<TopicsState, TopicError>> {
        async move { Ok(TopicsState::Ready { partitions: kafka.partitions }) }.boxed()
    }

    fn delete<'a>(&'a self, _kafka: &'a KafkaSpec, _prefix: &'a str) -> BoxFuture<'a, Result<(), TopicError>> {
        panic!("the fixtures retain their topics; nothing may delete them")
    }
}

impl Context {
    /// A context whose client talks to the returned [`ApiServerVerifier`], and whose Kafka is a
    /// [`FakeTopics`].
    pub fn test() -> (Arc<Self>, ApiServerVerifier) {
        Self::test_with(Arc::new(FakeTopics::default()))
    }

    pub fn test_with(topics: Arc<FakeTopics>) -> (Arc<Self>, ApiServerVerifier) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NAMESPACE);
        (Arc::new(Context::with_topics(client, Some("test".to_owned()), topics)), ApiServerVerifier(handle))
    }
}

/// What the API server holds, and so what a pass must do. One variant per case.
#[expect(clippy::large_enum_variant, reason = "one scenario per test, moved once into the verifier")]
pub enum Scenario {
    /// A system without the finalizer gets it, and nothing else happens in that pass.
    FinalizerAdded(OrderingSystem),
    /// The migration Job of the current image runs: the schema Job and the Deployments are
    /// only read, and the status says why nothing rolls out.
    MigrationsPending { system: OrderingSystem, migrate: Job },
    /// The migration Job failed: `DatabaseMigrated=False` (`JobFailed`, naming the Job and the
    /// failure) in the status, Warning Events, and nothing rolls out.
    MigrationFailed { system: OrderingSystem, migrate: Job },
    /// A Ready system got a new image: the new image's migration Job is applied; the
    /// Deployments (of the old image) are only read.
    NewImage { system: OrderingSystem, running: Vec<Deployment> },
    /// The new image's migration succeeded: its schema Job is applied; the old image's
    /// Deployments are still only read.
    NewImageMigrated { system: OrderingSystem, migrate: Job, running: Vec<Deployment> },
    /// Both Jobs succeeded on a new system: the ConfigMap, the Deployments and the Services
    /// are applied.
    RollOut { system: OrderingSystem, migrate: Job, schema: Job },
    /// Both Jobs of a new image succeeded: only the Deployments change (the ConfigMap and
    /// Services are the same), and the Jobs of the old image are deleted.
    Upgrade { system: OrderingSystem, jobs: Vec<Job>, live: Live },
    /// Everything is applied and available, the status is out of date: no write but the status
    /// patch, which carries `observedGeneration`.
    StatusPatch { system: OrderingSystem, jobs: Vec<Job>, live: Live },
    /// Everything is applied and available and the status says so: reads only.
    Idle { system: OrderingSystem, jobs: Vec<Job>, live: Live },
    /// Paused: reads only, and a status saying so.
    Paused(OrderingSystem),
    /// Deleted with `topicDeletionPolicy: Retain`: an Event, then the finalizer is removed.
    Cleanup(OrderingSystem),
}

/// The objects a rollout left in the cluster.
pub struct Live {
    pub config_map: ConfigMap,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
}

impl Live {
    /// What a completed rollout of `system` left: applied, and available.
    pub fn of(system: &OrderingSystem) -> Self {
        let desired = system.desired();
        Self {
            config_map: desired.config_map.applied(),
            deployments: desired.deployments.into_iter().map(|(_, d)| d.applied().available()).collect(),
            services: desired.services.into_iter().map(AppliedFixture::applied).collect(),
        }
    }
}

/// Waits for a scenario to finish, failing after a second (a request the reconcile never sent).
pub async fn timeout_after_1s(handle: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("the reconcile sent every request the scenario expects")
        .expect("the scenario's assertions hold");
}

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Respond = tower_test::mock::SendResponse<Response<Body>>;

/// The mocked API server of [`Context::test`].
pub struct ApiServerVerifier(ApiServerHandle);

fn path<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::url_path(&(), Some(NAMESPACE)))
}

fn collection<K: Resource<DynamicType = ()>>() -> String {
    K::url_path(&(), Some(NAMESPACE))
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("the fixture serialises")
}

fn respond(send: Respond, status: StatusCode, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("the response serialises");
    send.send_response(Response::builder().status(status).body(Body::from(bytes)).expect("a response"));
}

fn condition<'a>(status: &'a OrderingSystemStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("condition {type_} in {status:?}"))
}

fn reason_of<'a>(status: &'a OrderingSystemStatus, type_: &str) -> (&'a str, &'a str) {
    let c = condition(status, type_);
    (c.status.as_str(), c.reason.as_str())
}

/// The image of a Job's or Deployment's (one) container.
fn container_image(object: &Value) -> &str {
    object["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("a container image")
}

const N: EventType = EventType::Normal;
const W: EventType = EventType::Warning;

type ExpectedEvent = (&'static str, EventType);

/// The condition Events of a first pass (every condition is new), in condition order: `Ready`,
/// `TopicsReady` (the fake Kafka's topics are ready), `DatabaseMigrated`,
/// `CassandraSchemaReady`, then the same for each of the four workloads.
fn first_pass_events(
    ready: ExpectedEvent,
    migrate: ExpectedEvent,
    schema: ExpectedEvent,
    workloads: ExpectedEvent,
) -> Vec<ExpectedEvent> {
    let mut events = vec![ready, ("TopicsReady", N), migrate, schema];
    events.extend([workloads; 4]);
    events
}

impl ApiServerVerifier {
    /// Answers the requests of `scenario` in a task; await it with [`timeout_after_1s`] once
    /// the reconcile returned (and so dropped its client).
    pub fn run(self, scenario: Scenario) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut server = self;
            match scenario {
                Scenario::FinalizerAdded(system) => server.finalizer_added(system).await,
                Scenario::MigrationsPending { system, migrate } => {
                    let desired = system.desired();
                    server.get(&path::<Job>(&migrate.name_any()), Some(&migrate)).await;
                    server.get::<Job>(&path::<Job>(&desired.schema_job.name_any()), None).await;
                    server.read_deployments(&[]).await;
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "DatabaseMigrated"), ("False", "JobRunning"));
                    assert_eq!(reason_of(&status, "CassandraSchemaReady"), ("False", "WaitingForMigration"));
                    assert_eq!(reason_of(&status, "ApiAvailable"), ("False", "WaitingForMigrations"));
                    assert_eq!(reason_of(&status, "Ready"), ("False", "JobRunning"));
                    server
                        .events(&first_pass_events(
                            ("JobRunning", N),
                            ("JobRunning", N),
                            ("WaitingForMigration", N),
                            ("WaitingForMigrations", N),
                        ))
                        .await;
                }
                Scenario::MigrationFailed { system, migrate } => {
                    let desired = system.desired();
                    server.get(&path::<Job>(&migrate.name_any()), Some(&migrate)).await;
                    server.get::<Job>(&path::<Job>(&desired.schema_job.name_any()), None).await;
                    server.read_deployments(&[]).await;
                    let status = server.status_patch(&system).await;
                    let migrated = condition(&status, "DatabaseMigrated");
                    assert_eq!((migrated.status.as_str(), migrated.reason.as_str()), ("False", "JobFailed"));
                    assert!(
                        migrated.message.contains(&migrate.name_any()) && migrated.message.contains("backoff limit"),
                        "the message names the Job and the failure: {}",
                        migrated.message
                    );
                    assert_eq!(reason_of(&status, "Ready"), ("False", "JobFailed"));
                    assert_eq!(reason_of(&status, "ApiAvailable"), ("False", "WaitingForMigrations"));
                    assert_eq!(status.migrated_image, None);
                    server
                        .events(&first_pass_events(
                            ("JobFailed", W),
                            ("JobFailed", W),
                            ("WaitingForMigration", N),
                            ("WaitingForMigrations", N),
                        ))
                        .await;
                }
                Scenario::NewImage { system, running } => {
                    let desired = system.desired();
                    let name = desired.migrate_job.name_any();
                    server.get::<Job>(&path::<Job>(&name), None).await;
                    let job = server.apply(&path::<Job>(&name)).await;
                    assert_eq!(container_image(&job), system.spec.image, "the Job runs the new image");
                    server.get::<Job>(&path::<Job>(&desired.schema_job.name_any()), None).await;
                    server.read_deployments(&running).await;
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "DatabaseMigrated"), ("False", "JobRunning"));
                    assert!(condition(&status, "DatabaseMigrated").message.contains(&name));
                    assert_eq!(reason_of(&status, "ApiAvailable"), ("True", "MinimumReplicasAvailable"));
                    assert_eq!(status.migrated_image.as_deref(), Some(IMAGE), "the old image is the migrated one");
                    server
                        .events(&[("JobCreated", N), ("JobRunning", N), ("JobRunning", N), ("WaitingForMigration", N)])
                        .await;
                }
                Scenario::NewImageMigrated { system, migrate, running } => {
                    let desired = system.desired();
                    server.get(&path::<Job>(&migrate.name_any()), Some(&migrate)).await;
                    let name = desired.schema_job.name_any();
                    server.get::<Job>(&path::<Job>(&name), None).await;
                    let job = server.apply(&path::<Job>(&name)).await;
                    assert_eq!(container_image(&job), system.spec.image, "the Job runs the new image");
                    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["args"], json!(["cassandra-schema"]));
                    server.read_deployments(&running).await;
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "DatabaseMigrated"), ("True", "JobSucceeded"));
                    assert_eq!(reason_of(&status, "CassandraSchemaReady"), ("False", "JobRunning"));
                    assert_eq!(status.migrated_image.as_deref(), Some(IMAGE), "the old image is the migrated one");
                    server.events(&[("JobCreated", N), ("JobRunning", N), ("JobRunning", N)]).await;
                }
                Scenario::RollOut { system, migrate, schema } => {
                    let desired = system.desired();
                    server.get(&path::<Job>(&migrate.name_any()), Some(&migrate)).await;
                    server.get(&path::<Job>(&schema.name_any()), Some(&schema)).await;
                    let config = path::<ConfigMap>(&desired.config_map.name_any());
                    server.get::<ConfigMap>(&config, None).await;
                    server.apply_changed(&config).await;
                    for (_, deployment) in &desired.deployments {
                        let name = path::<Deployment>(&deployment.name_any());
                        server.get::<Deployment>(&name, None).await;
                        let applied = server.apply_changed(&name).await;
                        assert_eq!(container_image(&applied), system.spec.image);
                        assert_eq!(
                            applied["spec"]["template"]["metadata"]["annotations"][build::CONFIG_HASH_ANNOTATION],
                            json!(desired.config_hash),
                            "the pods carry the config hash"
                        );
                    }
                    for service in &desired.services {
                        let name = path::<Service>(&service.name_any());
                        server.get::<Service>(&name, None).await;
                        server.apply_changed(&name).await;
                    }
                    server.no_autoscaler().await;
                    server.list_jobs(&system, &[migrate, schema]).await;
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "ApiAvailable"), ("False", "RollingOut"));
                    assert_eq!(status.migrated_image.as_deref(), Some(system.spec.image.as_str()));
                    let mut events = vec![("ConfigApplied", N)];
                    events.extend([("DeploymentApplied", N); 4]);
                    events.extend(first_pass_events(
                        ("RollingOut", N),
                        ("JobSucceeded", N),
                        ("JobSucceeded", N),
                        ("RollingOut", N),
                    ));
                    server.events(&events).await;
                }
                Scenario::Upgrade { system, jobs, live } => {
                    let desired = system.desired();
                    let current = [desired.migrate_job.name_any(), desired.schema_job.name_any()];
                    for name in &current {
                        let job = jobs.iter().find(|j| j.name_any() == *name).expect("the current Jobs are live");
                        server.get(&path::<Job>(name), Some(job)).await;
                    }
                    server.get(&path::<ConfigMap>(&live.config_map.name_any()), Some(&live.config_map)).await;
                    for deployment in &live.deployments {
                        let name = path::<Deployment>(&deployment.name_any());
                        server.get(&name, Some(deployment)).await;
                        let applied = server.apply_changed(&name).await;
                        assert_eq!(container_image(&applied), system.spec.image);
                    }
                    for service in &live.services {
                        server.get(&path::<Service>(&service.name_any()), Some(service)).await;
                    }
                    server.no_autoscaler().await;
                    server.list_jobs(&system, &jobs).await;
                    for job in jobs.iter().filter(|j| !current.contains(&j.name_any())) {
                        server.delete_job(&job.name_any()).await;
                    }
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "DatabaseMigrated"), ("True", "JobSucceeded"));
                    assert_eq!(status.migrated_image.as_deref(), Some(system.spec.image.as_str()));
                    let mut events = vec![("DeploymentApplied", N); 4];
                    events.extend([("JobDeleted", N); 2]);
                    events.extend([("RollingOut", N); 5]);
                    server.events(&events).await;
                }
                Scenario::StatusPatch { system, jobs, live } => {
                    server.read_everything_applied(&system, &jobs, &live).await;
                    let status = server.status_patch(&system).await;
                    assert_eq!(reason_of(&status, "Ready"), ("True", "AllComponentsReady"));
                    assert_eq!(status.api.as_deref(), Some("2/2"));
                    server
                        .events(&first_pass_events(
                            ("AllComponentsReady", N),
                            ("JobSucceeded", N),
                            ("JobSucceeded", N),
                            ("MinimumReplicasAvailable", N),
                        ))
                        .await;
                }
                Scenario::Idle { system, jobs, live } => server.read_everything_applied(&system, &jobs, &live).await,
                Scenario::Paused(system) => {
                    let desired = system.desired();
                    server.get::<Job>(&path::<Job>(&desired.migrate_job.name_any()), None).await;
                    server.get::<Job>(&path::<Job>(&desired.schema_job.name_any()), None).await;
                    server.read_deployments(&[]).await;
                    let status = server.status_patch(&system).await;
                    let ready = condition(&status, "Ready");
                    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Paused"));
                    assert!(ready.message.contains("spec.paused"), "{}", ready.message);
                    server
                        .events(&first_pass_events(
                            ("Paused", N),
                            ("NotStarted", N),
                            ("WaitingForMigration", N),
                            ("WaitingForMigrations", N),
                        ))
                        .await;
                }
                Scenario::Cleanup(system) => {
                    server.events(&[("TopicsRetained", N)]).await;
                    server.finalizer_removed(system).await;
                }
            }
            server.no_more_requests().await;
        })
    }

    /// The next request, which must be `method path`.
    async fn expect(&mut self, method: Method, path: &str) -> (Request<Body>, Respond) {
        let (request, send) = self.0.next_request().await.expect("the reconcile sends the next request");
        assert_eq!(
            format!("{} {}", request.method(), request.uri().path()),
            format!("{method} {path}"),
            "unexpected request (query {:?})",
            request.uri().query()
        );
        (request, send)
    }

    async fn body(request: Request<Body>) -> Value {
        let bytes = request.into_body().collect_bytes().await.expect("the request body");
        serde_json::from_slice(&bytes).expect("a JSON request body")
    }

    /// A GET answered with `object`, or 404 Not Found.
    async fn get<K: Serialize>(&mut self, path: &str, object: Option<&K>) {
        let (_, send) = self.expect(Method::GET, path).await;
        match object {
            Some(object) => respond(send, StatusCode::OK, &to_json(object)),
            None => respond(
                send,
                StatusCode::NOT_FOUND,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        }
    }

    /// A forced server-side apply with the operator's field manager; answered with the applied
    /// object, which is returned.
    async fn apply(&mut self, path: &str) -> Value {
        let (request, send) = self.expect(Method::PATCH, path).await;
        let query = request.uri().query().unwrap_or_default().to_owned();
        assert!(
            query.contains(&format!("fieldManager={FIELD_MANAGER}")) && query.contains("force=true"),
            "a forced apply by {FIELD_MANAGER}: {query}"
        );
        assert_eq!(
            request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/apply-patch+yaml")
        );
        let body = Self::body(request).await;
        assert!(path.ends_with(&format!("/{}", body["metadata"]["name"].as_str().expect("a name"))), "{path}");
        respond(send, StatusCode::OK, &body);
        body
    }

    /// [`Self::apply`] of an object that carries the hash of what is applied (every object but
    /// the Jobs, which are created once and never re-applied).
    async fn apply_changed(&mut self, path: &str) -> Value {
        let body = self.apply(path).await;
        assert!(
            body["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].is_string(),
            "an applied object carries its hash: {body}"
        );
        body
    }

    /// The four Deployments read (not applied), answered with those of `running` that exist.
    async fn read_deployments(&mut self, running: &[Deployment]) {
        for workload in Workload::ALL {
            let name = workload.object_name("shop");
            self.get(&path::<Deployment>(&name), running.iter().find(|d| d.name_any() == name)).await;
        }
    }

    /// No autoscaler is asked for, and none exists.
    async fn no_autoscaler(&mut self) {
        let path = path::<HorizontalPodAutoscaler>(&Workload::Api.object_name("shop"));
        self.get::<Value>(&path, None).await;
    }

    /// The Jobs of the system listed (to find those of earlier images); answered with `jobs`.
    async fn list_jobs(&mut self, system: &OrderingSystem, jobs: &[Job]) {
        let (request, send) = self.expect(Method::GET, &collection::<Job>()).await;
        let query = request.uri().query().unwrap_or_default().to_owned();
        assert!(query.contains(&format!("app.kubernetes.io%2Finstance%3D{}", system.name_any())), "{query}");
        let items: Vec<Value> = jobs.iter().map(to_json).collect();
        respond(
            send,
            StatusCode::OK,
            &json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}),
        );
    }

    /// A Job deleted with its pods (background propagation).
    async fn delete_job(&mut self, name: &str) {
        let (request, send) = self.expect(Method::DELETE, &path::<Job>(name)).await;
        assert_eq!(Self::body(request).await["propagationPolicy"], "Background");
        respond(send, StatusCode::OK, &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}));
    }

    /// The reads of a pass over a system whose Jobs succeeded and whose objects are `live`,
    /// applied and unchanged: no write.
    async fn read_everything_applied(&mut self, system: &OrderingSystem, jobs: &[Job], live: &Live) {
        for job in jobs {
            self.get(&path::<Job>(&job.name_any()), Some(job)).await;
        }
        self.get(&path::<ConfigMap>(&live.config_map.name_any()), Some(&live.config_map)).await;
        for deployment in &live.deployments {
            self.get(&path::<Deployment>(&deployment.name_any()), Some(deployment)).await;
        }
        for service in &live.services {
            self.get(&path::<Service>(&service.name_any()), Some(service)).await;
        }
        self.no_autoscaler().await;
        self.list_jobs(system, jobs).await;
    }

    /// A merge patch of the status subresource carrying `observedGeneration` on the status and
    /// on every condition; answered with the patched system, and returned.
    async fn status_patch(&mut self, system: &OrderingSystem) -> OrderingSystemStatus {
        let (request, send) =
            self.expect(Method::PATCH, &format!("{}/status", path::<OrderingSystem>(&system.name_any()))).await;
        assert_eq!(
            request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/merge-patch+json")
        );
        let body = Self::body(request).await;
        let status: OrderingSystemStatus =
            serde_json::from_value(body["status"].clone()).expect("the patch carries a status");
        let generation = system.metadata.generation;
        assert_eq!(status.observed_generation, generation, "status.observedGeneration");
        for c in &status.conditions {
            assert_eq!(c.observed_generation, generation, "observedGeneration of condition {}", c.type_);
        }
        let mut patched = system.clone();
        patched.status = Some(status.clone());
        respond(send, StatusCode::OK, &to_json(&patched));
        status
    }

    /// Events on the system, with these reasons and types, in this order. The recorder keys
    /// Events by type, reason and action (not by note): the first of a key is created, a
    /// repeat is a merge patch of that Event, counting the series. (In these scenarios a reason
    /// always comes with the same action, so type and reason make the key.)
    async fn events(&mut self, expected: &[ExpectedEvent]) {
        let collection = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
        let mut created: Vec<(String, Value)> = Vec::new();
        for (i, (reason, type_)) in expected.iter().enumerate() {
            let type_ = match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            };
            let key = format!("{type_}/{reason}");
            let repeat = created.iter().position(|(k, _)| *k == key);
            let (request, send) = match repeat {
                None => self.expect(Method::POST, &collection).await,
                Some(at) => {
                    let name = created[at].1["metadata"]["name"].as_str().expect("an Event name").to_owned();
                    self.expect(Method::PATCH, &format!("{collection}/{name}")).await
                }
            };
            let body = Self::body(request).await;
            assert_eq!(
                (body["reason"].as_str(), body["type"].as_str()),
                (Some(*reason), Some(type_)),
                "Event {i} of {expected:?}"
            );
            assert_eq!(body["regarding"]["kind"], "OrderingSystem");
            match repeat {
                None => created.push((key, body.clone())),
                Some(at) => {
                    assert!(body["series"]["count"].as_i64().is_some_and(|n| n >= 2), "a series: {body}");
                    created[at].1 = body.clone();
                }
            }
            respond(send, if repeat.is_none() { StatusCode::CREATED } else { StatusCode::OK }, &body);
        }
    }

    async fn finalizer_added(&mut self, system: OrderingSystem) {
        let (request, send) = self.expect(Method::PATCH, &path::<OrderingSystem>(&system.name_any())).await;
        let patch = Self::body(request).await;
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
            ])
        );
        respond(send, StatusCode::OK, &to_json(&system.finalized()));
    }

    async fn finalizer_removed(&mut self, system: OrderingSystem) {
        let (request, send) = self.expect(Method::PATCH, &path::<OrderingSystem>(&system.name_any())).await;
        let patch = Self::body(request).await;
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ])
        );
        let mut gone = system;
        gone.finalizers_mut().clear();
        respond(send, StatusCode::OK, &to_json(&gone));
    }

    /// The reconcile dropped its client without another request.
    async fn no_more_requests(mut self) {
        if let Some((request, _)) = self.0.next_request().await {
            panic!("unexpected request after the scenario: {} {}", request.method(), request.uri());
        }
    }
}
