//! Harness for the operator's integration tests: the real API server of `make k8s-up`
//! (KUBECONFIG from `make -s k8s-env`) and the real Kafka of `make infra-up`
//! (ORDEXA_KAFKA_BOOTSTRAP). A missing server fails the test; nothing is skipped.
//!
//! Each test gets its own namespace, topic prefix and in-process controller watching only that
//! namespace, through a client that records every write it makes. There is no kubelet: where a
//! node would run a pod, the test sets the pod's status through the status subresource, and
//! kube-controller-manager turns that into Job and Deployment status as in a real cluster.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::client::ClientBuilder;
use kube::{Api, Client, Config, CustomResourceExt, ResourceExt};
use ordexa_operator::controller::{self, Context};
use ordexa_operator::crd::OrderingSystem;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use serde_json::{Value, json};
use tokio::sync::watch;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How long a step may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn required_env(name: &str, hint: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {hint}"),
    }
}

/// Kafka bootstrap servers of the local Kafka.
pub fn kafka_bootstrap() -> String {
    required_env(
        "ORDEXA_KAFKA_BOOTSTRAP",
        "start the local servers with `make infra-up` and run `eval \"$(make -s infra-env)\"`",
    )
}

/// A client of the test API server.
pub async fn client() -> Client {
    required_env("KUBECONFIG", "start the test API server with `make k8s-up` and run `eval \"$(make -s k8s-env)\"`");
    let client = Client::try_default().await.expect("a client from KUBECONFIG");
    client.apiserver_version().await.expect("the test API server answers (is `make k8s-up` running?)");
    client
}

/// Installs (or updates) the CRD from the Rust types and waits until it is served.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = OrderingSystem::crd();
    let name = crd.name_any();
    crds.patch(&name, &PatchParams::apply("ordexa-tests").force(), &Patch::Apply(&crd)).await.expect("CRD applies");
    wait_for("the CRD to be established", || async {
        let crd = crds.get(&name).await.ok()?;
        let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

/// Polls `check` every 250 ms until it yields a value; panics after [`STEP_TIMEOUT`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {STEP_TIMEOUT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every write (non-GET request) the controller's client made, as `METHOD path`.
#[derive(Clone, Default)]
pub struct WriteLog(Arc<Mutex<Vec<String>>>);

impl WriteLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("write log lock"))
    }
    fn record(&self, line: String) {
        self.0.lock().expect("write log lock").push(line);
    }
}

/// One test's world: a namespace, a topic prefix, Secrets, and a controller for them.
pub struct Harness {
    pub client: Client,
    pub namespace: String,
    pub prefix: String,
    pub writes: WriteLog,
    stop: watch::Sender<bool>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// A namespace with an in-process controller watching it.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, true).await
    }

    /// A namespace without a controller (for tests that run the binary).
    pub async fn start_without_controller(test: &str) -> Self {
        Self::start_with(test, false).await
    }

    async fn start_with(test: &str, with_controller: bool) -> Self {
        let client = client().await;
        install_crd(&client).await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let namespace = format!("it-{test}-{}", &id[..8]);
        let prefix = format!("it-{}.", &id[..12]);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace"),
            )
            .await
            .expect("namespace is created");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        for (name, key, value) in [
            ("shop-postgres", "url", "postgres://ordexa@postgres/ordexa"),
            ("shop-jwt", "secret", "0123456789abcdef0123456789abcdef"),
        ] {
            let secret = json!({"metadata": {"name": name}, "stringData": {key: value}});
            secrets
                .create(&PostParams::default(), &serde_json::from_value(secret).expect("secret"))
                .await
                .expect("secret is created");
        }

        // The controller's own client, recording each write it sends.
        let writes = WriteLog::default();
        let log = writes.clone();
        let config = Config::infer().await.expect("kubeconfig");
        let recorder = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            if request.method() != http::Method::GET {
                log.record(format!("{} {}", request.method(), request.uri()));
            }
            request
        });
        let controller_client = ClientBuilder::try_from(config).expect("client builder").with_layer(&recorder).build();
        let ctx = Arc::new(Context::new(controller_client, Some(format!("test-{test}"))));
        let (stop, mut stopped) = watch::channel(false);
        let controller = with_controller.then(|| {
            tokio::spawn(controller::run(ctx, Some(namespace.clone()), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        Self { client, namespace, prefix, writes, stop, controller }
    }

    /// Stops the controller and deletes the namespace (what it holds goes with it).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(controller) = self.controller {
            let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.namespace, &DeleteParams::default()).await;
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The contract's smallest manifest, with this test's topic prefix and `partitions`.
    pub fn manifest(&self, partitions: i32) -> Value {
        json!({
            "apiVersion": "ordexa.io/v1alpha1",
            "kind": "OrderingSystem",
            "metadata": {"name": "shop", "namespace": self.namespace},
            "spec": {
                "image": "registry.example/ordexa:0.1.0",
                "postgres": {"urlSecretRef": {"name": "shop-postgres", "key": "url"}},
                "kafka": {"bootstrapServers": kafka_bootstrap(), "topicPrefix": self.prefix, "partitions": partitions, "replicationFactor": 1},
                "cassandra": {"nodes": ["cassandra:9042"], "keyspace": "shop", "replicationFactor": 1},
                "auth": {"jwtSecretRef": {"name": "shop-jwt", "key": "secret"}},
                "api": {"replicas": 2},
                "relay": {"replicas": 1},
                "projector": {"replicas": 2},
                "frontend": {"enabled": true, "replicas": 1}
            }
        })
    }

    /// Applies a manifest as a person with kubectl would (server-side, strict field validation).
    pub async fn apply(&self, manifest: &Value) -> Result<OrderingSystem, kube::Error> {
        let name = manifest["metadata"]["name"].as_str().unwrap_or("shop");
        let mut params = PatchParams::apply("kubectl").force();
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        self.api::<OrderingSystem>().patch(name, &params, &Patch::Apply(manifest)).await
    }

    /// Merge-patches the spec, as `kubectl patch --type merge` would.
    pub async fn patch_spec(&self, spec: Value) -> Result<OrderingSystem, kube::Error> {
        self.api::<OrderingSystem>().patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await
    }

    pub async fn system(&self) -> OrderingSystem {
        self.api::<OrderingSystem>().get("shop").await.expect("the OrderingSystem exists")
    }

    /// Waits until condition `type_` has `status` (and `reason`, when given) for the current
    /// generation; returns its message.
    pub async fn wait_condition(&self, type_: &str, status: &str, reason: Option<&str>) -> String {
        let what = format!("condition {type_}={status} ({reason:?})");
        wait_for(&what, || async {
            let system = self.api::<OrderingSystem>().get("shop").await.ok()?;
            let st = system.status.as_ref()?;
            if st.observed_generation != system.metadata.generation {
                return None;
            }
            let c = st.conditions.iter().find(|c| c.type_ == type_)?;
            (c.status == status && reason.is_none_or(|r| c.reason == r)).then(|| c.message.clone())
        })
        .await
    }

    /// The Job of a component (`migrate`, `cassandra-schema`), once it exists.
    pub async fn wait_job(&self, component: &str) -> Job {
        let selector = format!("app.kubernetes.io/component={component}");
        wait_for(&format!("the {component} Job"), || async {
            let jobs = self.api::<Job>().list(&ListParams::default().labels(&selector)).await.ok()?;
            jobs.items.into_iter().find(|j| j.metadata.deletion_timestamp.is_none())
        })
        .await
    }

    pub async fn jobs(&self, component: &str) -> Vec<Job> {
        let selector = format!("app.kubernetes.io/component={component}");
        self.api::<Job>().list(&ListParams::default().labels(&selector)).await.expect("jobs list").items
    }

    pub async fn deployments(&self) -> Vec<Deployment> {
        self.api::<Deployment>().list(&ListParams::default()).await.expect("deployments list").items
    }

    /// Plays the kubelet for a Job: its pod ends in `phase` (`Succeeded` or `Failed`), and the
    /// Job controller records the outcome.
    pub async fn finish_job_pod(&self, job: &Job, phase: &str) {
        let name = job.name_any();
        let selector = format!("batch.kubernetes.io/job-name={name}");
        let pods: Api<Pod> = self.api();
        let pod = wait_for(&format!("a pod of Job {name}"), || async {
            pods.list(&ListParams::default().labels(&selector)).await.ok()?.items.into_iter().next()
        })
        .await;
        let now = Timestamp::now().to_string();
        let exit_code = if phase == "Succeeded" { 0 } else { 1 };
        let container =
            pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()).unwrap_or_default();
        let status = json!({"status": {
            "phase": phase,
            "startTime": now,
            "containerStatuses": [{
                "name": container, "image": "registry.example/ordexa:0.1.0", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" }, "startedAt": now, "finishedAt": now}}
            }]
        }});
        pods.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("pod status is set");
        let expected = if phase == "Succeeded" { "Complete" } else { "Failed" };
        let jobs: Api<Job> = self.api();
        wait_for(&format!("Job {name} to be {expected}"), || async {
            let job = jobs.get(&name).await.ok()?;
            job.status?.conditions?.iter().any(|c| c.type_ == expected && c.status == "True").then_some(())
        })
        .await;
    }

    /// Plays the kubelet for every pod of a component: Running and Ready.
    pub async fn make_pods_ready(&self, component: &str) -> usize {
        let pods: Api<Pod> = self.api();
        let selector = format!("app.kubernetes.io/component={component}");
        let now = Timestamp::now().to_string();
        let mut marked = 0;
        for pod in pods.list(&ListParams::default().labels(&selector)).await.expect("pods list") {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                continue;
            }
            let status = json!({"status": {
                "phase": "Running",
                "startTime": now,
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
                ]
            }});
            pods.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("pod status is set");
            marked += 1;
        }
        marked
    }

    /// Marks pods ready until every Deployment reports all replicas available.
    pub async fn make_workloads_available(&self) {
        wait_for("every Deployment to be available", || async {
            for component in ["api", "relay", "projector", "frontend"] {
                self.make_pods_ready(component).await;
            }
            let deployments = self.deployments().await;
            let all = !deployments.is_empty()
                && deployments.iter().all(|d| {
                    let want = d.spec.replicas.unwrap_or(1);
                    let st = d.status.clone().unwrap_or_default();
                    st.available_replicas.unwrap_or(0) == want
                        && st.updated_replicas.unwrap_or(0) == want
                        && st.replicas.unwrap_or(0) == want
                });
            all.then_some(())
        })
        .await;
    }

    /// Runs both Jobs to success.
    pub async fn migrate(&self) {
        let migrate = self.wait_job("migrate").await;
        self.finish_job_pod(&migrate, "Succeeded").await;
        let schema = self.wait_job("cassandra-schema").await;
        self.finish_job_pod(&schema, "Succeeded").await;
    }

    /// Partitions of each of this test's topics, `None` where a topic does not exist.
    pub async fn topic_partitions(&self) -> Vec<Option<usize>> {
        let bootstrap = kafka_bootstrap();
        let names = [format!("{}orders", self.prefix), format!("{}orders.dlq", self.prefix)];
        tokio::task::spawn_blocking(move || {
            let admin: AdminClient<DefaultClientContext> =
                ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("kafka admin client");
            names
                .iter()
                .map(|name| {
                    // A metadata request can fail on a transient broker hiccup; retry a little.
                    let mut attempt = 0;
                    let metadata = loop {
                        match admin.inner().fetch_metadata(Some(name), Duration::from_secs(10)) {
                            Ok(metadata) => break metadata,
                            Err(err) if attempt < 5 => {
                                attempt += 1;
                                eprintln!("kafka metadata for {name} failed ({err}); retrying");
                                std::thread::sleep(Duration::from_secs(1));
                            }
                            Err(err) => panic!("kafka metadata for {name}: {err}"),
                        }
                    };
                    metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == name && t.error().is_none())
                        .map(|t| t.partitions().len())
                })
                .collect()
        })
        .await
        .expect("metadata task")
    }

    /// Deletes this test's topics (for tests whose policy retains them).
    pub async fn delete_topics(&self) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", kafka_bootstrap()).create().expect("kafka admin client");
        let names = [format!("{}orders", self.prefix), format!("{}orders.dlq", self.prefix)];
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&refs, &AdminOptions::new()).await;
    }

    /// Reasons of the Events on the OrderingSystem.
    pub async fn event_reasons(&self) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = self.api();
        events
            .list(&ListParams::default())
            .await
            .expect("events list")
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }
}
