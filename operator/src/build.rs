//! Build step (pure, no server): the objects an `OrderingSystem` wants, computed from its spec.
//!
//! - one ConfigMap with every non-secret setting; each pod reads the keys its role takes (named in
//!   the platform's configuration contract, `ordexa_platform::env`), and its hash is
//!   the `ordexa.io/config-hash` annotation on each pod template, so a config change rolls the
//!   pods while an unchanged spec yields byte-identical objects (no needless rollout);
//! - secrets reach pods only as `secretKeyRef` env variables: never read, never copied;
//! - the migration and Cassandra schema Jobs are named after a hash of their pod template, so a
//!   new image (or other Job change) makes a new Job that runs again, while the same spec finds
//!   the Job that already ran;
//! - the Deployments (api, relay, projector, frontend) with probes on the health endpoints,
//!   resources on every pod, and the Services of api and frontend.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use ordexa_platform::env;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::{FrontendServiceSpec, OrderingSystem, PullPolicy, SecretKeyRef, ServiceType};

/// Annotation on pod templates: hash of the configuration the pods read.
pub const CONFIG_HASH_ANNOTATION: &str = "ordexa.io/config-hash";
/// Annotation on Jobs: the image whose migrations the Job applies.
pub const IMAGE_ANNOTATION: &str = "ordexa.io/image";
/// Label naming the role of an object (`api`, `relay`, `migrate`, …).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label naming the OrderingSystem an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label marking what this operator manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "ordexa-operator";
/// The port every long-running role listens on inside its pod.
pub const HTTP_PORT: i32 = 8080;

/// Why the desired objects could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the OrderingSystem has no {0}; it must come from the API server")]
    MissingMetadata(&'static str),
    #[error("could not serialise {what} to hash it")]
    Hash {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// A long-running role of the workload image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    Api,
    Relay,
    Projector,
    Frontend,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Workload::Api, Workload::Relay, Workload::Projector, Workload::Frontend];

    /// The component label and name suffix.
    pub fn component(self) -> &'static str {
        match self {
            Workload::Api => "api",
            Workload::Relay => "relay",
            Workload::Projector => "projector",
            Workload::Frontend => "frontend",
        }
    }

    /// The `ordexa` subcommand that runs it.
    fn subcommand(self) -> &'static str {
        match self {
            Workload::Api => "api",
            Workload::Relay => "relay",
            Workload::Projector => "projector",
            Workload::Frontend => "web",
        }
    }

    /// The ConfigMap keys its role reads: exactly the `ORDEXA_*` variables `ordexa <role>` takes
    /// (a test in `workloads/ordexa` holds the two together), and the log filter.
    pub fn settings(self) -> &'static [&'static str] {
        match self {
            Workload::Api => {
                &[env::CASSANDRA_NODES, env::CASSANDRA_KEYSPACE, env::HTTP_ADDR, env::LOG_FORMAT, env::RUST_LOG]
            }
            Workload::Relay => &[
                env::KAFKA_BOOTSTRAP,
                env::TOPIC_PREFIX,
                env::RELAY_TRANSACTIONAL_ID,
                env::HTTP_ADDR,
                env::LOG_FORMAT,
                env::RUST_LOG,
            ],
            Workload::Projector => &[
                env::KAFKA_BOOTSTRAP,
                env::TOPIC_PREFIX,
                env::PROJECTOR_GROUP,
                env::CASSANDRA_NODES,
                env::CASSANDRA_KEYSPACE,
                env::HTTP_ADDR,
                env::LOG_FORMAT,
                env::RUST_LOG,
            ],
            Workload::Frontend => &[env::API_UPSTREAM, env::HTTP_ADDR, env::LOG_FORMAT, env::RUST_LOG],
        }
    }

    /// Health endpoints: (liveness, readiness). The frontend serves the SPA at `/`.
    fn probe_paths(self) -> (&'static str, &'static str) {
        match self {
            Workload::Frontend => ("/", "/"),
            _ => ("/healthz", "/readyz"),
        }
    }

    /// Name of its Deployment (and Service) for the OrderingSystem `system`.
    pub fn object_name(self, system: &str) -> String {
        format!("{system}-{}", self.component())
    }
}

/// Everything the spec asks for, ready to be applied.
#[derive(Debug, Clone)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub config_hash: String,
    pub migrate_job: Job,
    pub schema_job: Job,
    /// Deployments of the enabled workloads, in pipeline order.
    pub deployments: Vec<(Workload, Deployment)>,
    pub services: Vec<Service>,
    /// The api's autoscaler when `spec.api.autoscaling` is set.
    pub api_autoscaler: Option<HorizontalPodAutoscaler>,
    /// Workloads the spec turned off, whose objects must be deleted.
    pub disabled: Vec<Workload>,
}

/// Builds every object the OrderingSystem wants. Deterministic: the same spec gives the same
/// objects, hashes and Job names.
pub fn desired(system: &OrderingSystem) -> Result<Desired, BuildError> {
    let name = system.metadata.name.clone().ok_or(BuildError::MissingMetadata("metadata.name"))?;
    let namespace = system.metadata.namespace.clone().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    let owner = system.controller_owner_ref(&()).ok_or(BuildError::MissingMetadata("metadata.uid"))?;
    let ctx = BuildContext { system, name, namespace, owner };

    let config_map = ctx.config_map();
    let config_hash = hash(&config_map.data, "the ConfigMap")?;
    let spec = &system.spec;
    let migrate_job = ctx.job("migrate", ctx.migrate_env(), &spec.postgres.url_secret_ref)?;
    let schema_job = ctx.job("cassandra-schema", ctx.schema_env(), &spec.cassandra)?;

    let mut deployments = Vec::new();
    let mut services = Vec::new();
    let mut disabled = Vec::new();
    for workload in Workload::ALL {
        let (enabled, replicas, resources) = match workload {
            Workload::Api => {
                (true, if spec.api.autoscaling.is_some() { None } else { Some(spec.api.replicas) }, &spec.api.resources)
            }
            Workload::Relay => (true, Some(spec.relay.replicas), &spec.relay.resources),
            Workload::Projector => (true, Some(spec.projector.replicas), &spec.projector.resources),
            Workload::Frontend => (spec.frontend.enabled, Some(spec.frontend.replicas), &spec.frontend.resources),
        };
        if !enabled {
            disabled.push(workload);
            continue;
        }
        deployments.push((workload, ctx.deployment(workload, replicas, resources, &config_hash)));
        if matches!(workload, Workload::Api | Workload::Frontend) {
            let exposure = (workload == Workload::Frontend).then_some(&spec.frontend.service);
            services.push(ctx.service(workload, exposure));
        }
    }
    let api_autoscaler = spec.api.autoscaling.as_ref().map(|scaling| ctx.autoscaler(scaling));
    Ok(Desired { config_map, config_hash, migrate_job, schema_job, deployments, services, api_autoscaler, disabled })
}

/// Name of the ConfigMap of the OrderingSystem `system`.
pub fn config_map_name(system: &str) -> String {
    format!("{system}-config")
}

/// The selector labels of every object of one component.
pub fn selector_labels(system: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "ordexa".to_owned()),
        (INSTANCE_LABEL.to_owned(), system.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// A short, stable hex digest of a value's JSON form.
pub fn hash<T: Serialize>(value: &T, what: &'static str) -> Result<String, BuildError> {
    let bytes = serde_json::to_vec(value).map_err(|source| BuildError::Hash { what, source })?;
    Ok(digest(&bytes))
}

/// The short hex digest [`hash`] gives for a value serialised to `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

struct BuildContext<'a> {
    system: &'a OrderingSystem,
    name: String,
    namespace: String,
    owner: OwnerReference,
}

impl BuildContext<'_> {
    fn meta(&self, name: String, component: &str) -> ObjectMeta {
        let mut labels = selector_labels(&self.name, component);
        labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Non-secret settings shared by the long-running roles.
    fn config_map(&self) -> ConfigMap {
        let spec = &self.system.spec;
        let data = BTreeMap::from([
            (env::KAFKA_BOOTSTRAP.to_owned(), spec.kafka.bootstrap_servers.clone()),
            (env::TOPIC_PREFIX.to_owned(), self.system.topic_prefix()),
            (env::PROJECTOR_GROUP.to_owned(), self.system.consumer_group()),
            (env::RELAY_TRANSACTIONAL_ID.to_owned(), self.system.transactional_id()),
            (env::CASSANDRA_NODES.to_owned(), spec.cassandra.nodes.join(",")),
            (env::CASSANDRA_KEYSPACE.to_owned(), spec.cassandra.keyspace.clone()),
            (env::CASSANDRA_REPLICATION_FACTOR.to_owned(), spec.cassandra.replication_factor.to_string()),
            (env::HTTP_ADDR.to_owned(), format!("0.0.0.0:{HTTP_PORT}")),
            (
                env::API_UPSTREAM.to_owned(),
                format!("http://{}.{}.svc:{HTTP_PORT}", Workload::Api.object_name(&self.name), self.namespace),
            ),
            (env::LOG_FORMAT.to_owned(), "json".to_owned()),
            (env::RUST_LOG.to_owned(), spec.log_level.clone()),
        ]);
        ConfigMap {
            metadata: self.meta(config_map_name(&self.name), "config"),
            data: Some(data),
            ..ConfigMap::default()
        }
    }

    fn common_env(&self) -> Vec<EnvVar> {
        vec![plain_env(env::LOG_FORMAT, "json"), plain_env(env::RUST_LOG, &self.system.spec.log_level)]
    }

    fn migrate_env(&self) -> Vec<EnvVar> {
        let mut env = self.common_env();
        env.push(secret_env(env::DATABASE_URL, &self.system.spec.postgres.url_secret_ref));
        env
    }

    fn schema_env(&self) -> Vec<EnvVar> {
        let cassandra = &self.system.spec.cassandra;
        let mut env = self.common_env();
        env.push(plain_env(env::CASSANDRA_NODES, &cassandra.nodes.join(",")));
        env.push(plain_env(env::CASSANDRA_KEYSPACE, &cassandra.keyspace));
        env.push(plain_env(env::CASSANDRA_REPLICATION_FACTOR, &cassandra.replication_factor.to_string()));
        env
    }

    /// Secrets a workload needs, as `secretKeyRef`s.
    fn workload_secrets(&self, workload: Workload) -> Vec<EnvVar> {
        let spec = &self.system.spec;
        let database = secret_env(env::DATABASE_URL, &spec.postgres.url_secret_ref);
        let jwt = secret_env(env::JWT_SECRET, &spec.auth.jwt_secret_ref);
        match workload {
            Workload::Api => vec![database, jwt],
            Workload::Relay => vec![database],
            Workload::Projector | Workload::Frontend => Vec::new(),
        }
    }

    fn container(&self, name: &str, subcommand: &str, resources: &Option<ResourceRequirements>) -> Container {
        Container {
            name: name.to_owned(),
            image: Some(self.system.spec.image.clone()),
            image_pull_policy: self.system.spec.image_pull_policy.map(|p| {
                match p {
                    PullPolicy::Always => "Always",
                    PullPolicy::IfNotPresent => "IfNotPresent",
                    PullPolicy::Never => "Never",
                }
                .to_owned()
            }),
            args: Some(vec![subcommand.to_owned()]),
            resources: Some(resources.clone().unwrap_or_else(default_resources)),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }
    }

    fn pod_spec(&self, container: Container, restart_policy: Option<&str>) -> PodSpec {
        PodSpec {
            containers: vec![container],
            restart_policy: restart_policy.map(str::to_owned),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }
    }

    /// A one-shot Job running `ordexa <component>`, named after the hash of the image and of
    /// `target` (the database it migrates): a new image or another database runs it again,
    /// while log level or resources changes do not re-run a migration that already succeeded.
    fn job<T: Serialize>(&self, component: &str, env: Vec<EnvVar>, target: &T) -> Result<Job, BuildError> {
        let migrations = &self.system.spec.migrations;
        let mut container = self.container(component, component, &migrations.resources);
        container.env = Some(env);
        let labels = selector_labels(&self.name, component);
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
            spec: Some(self.pod_spec(container, Some("Never"))),
        };
        let job_hash = hash(&(&self.system.spec.image, target), "the Job's image and target")?;
        let mut meta = self.meta(format!("{}-{component}-{job_hash}", self.name), component);
        meta.annotations = Some(BTreeMap::from([(IMAGE_ANNOTATION.to_owned(), self.system.spec.image.clone())]));
        Ok(Job {
            metadata: meta,
            spec: Some(JobSpec {
                backoff_limit: Some(migrations.backoff_limit.unwrap_or(3)),
                // No TTL: the finished Job is the record that this image's migrations succeeded
                // (and keeps a failed run's logs); the operator deletes superseded Jobs.
                template,
                ..JobSpec::default()
            }),
            ..Job::default()
        })
    }

    fn deployment(
        &self,
        workload: Workload,
        replicas: Option<i32>,
        resources: &Option<ResourceRequirements>,
        config_hash: &str,
    ) -> Deployment {
        let component = workload.component();
        let mut container = self.container(component, workload.subcommand(), resources);
        let mut env: Vec<EnvVar> =
            workload.settings().iter().map(|key| config_env(key, &config_map_name(&self.name))).collect();
        env.extend(self.workload_secrets(workload));
        container.env = Some(env);
        container.ports = Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        }]);
        let (liveness, readiness) = workload.probe_paths();
        container.liveness_probe = Some(http_probe(liveness, 10, 6));
        container.readiness_probe = Some(http_probe(readiness, 5, 3));
        // Give in-flight requests time to finish: the roles drain on SIGTERM.
        let mut pod = self.pod_spec(container, None);
        pod.termination_grace_period_seconds = Some(30);

        let labels = selector_labels(&self.name, component);
        let mut annotations = BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned())]);
        annotations.insert("prometheus.io/scrape".to_owned(), "true".to_owned());
        annotations.insert("prometheus.io/port".to_owned(), HTTP_PORT.to_string());
        Deployment {
            metadata: self.meta(workload.object_name(&self.name), component),
            spec: DeploymentSpec {
                replicas,
                selector: LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".to_owned()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String("25%".to_owned())),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        annotations: Some(annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    fn service(&self, workload: Workload, exposure: Option<&FrontendServiceSpec>) -> Service {
        let component = workload.component();
        let type_ = exposure.map_or(ServiceType::ClusterIP, |e| e.type_);
        Service {
            metadata: self.meta(workload.object_name(&self.name), component),
            spec: Some(ServiceSpec {
                type_: Some(
                    match type_ {
                        ServiceType::ClusterIP => "ClusterIP",
                        ServiceType::NodePort => "NodePort",
                        ServiceType::LoadBalancer => "LoadBalancer",
                    }
                    .to_owned(),
                ),
                selector: Some(selector_labels(&self.name, component)),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: HTTP_PORT,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    node_port: exposure.and_then(|e| e.node_port),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn autoscaler(&self, scaling: &crate::crd::AutoscalingSpec) -> HorizontalPodAutoscaler {
        HorizontalPodAutoscaler {
            metadata: self.meta(Workload::Api.object_name(&self.name), Workload::Api.component()),
            spec: HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".to_owned()),
                    kind: "Deployment".to_owned(),
                    name: Workload::Api.object_name(&self.name),
                },
                min_replicas: Some(scaling.min_replicas),
                max_replicas: scaling.max_replicas,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".to_owned(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".to_owned(),
                        target: MetricTarget {
                            type_: "Utilization".to_owned(),
                            average_utilization: Some(scaling.target_cpu_utilization_percentage),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }]),
                ..HorizontalPodAutoscalerSpec::default()
            },
            ..HorizontalPodAutoscaler::default()
        }
    }
}

/// Requests that let the scheduler place the pod, and a memory limit so a leak cannot take the
/// node down. No CPU limit: throttling a latency-sensitive service hurts more than it protects.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".to_owned())),
            ("memory".to_owned(), Quantity("128Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("512Mi".to_owned()))])),
        ..ResourceRequirements::default()
    }
}

/// `name` read from key `name` of the system's ConfigMap.
fn config_env(name: &str, config_map: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: config_map.to_owned(),
                key: name.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.to_owned()), ..EnvVar::default() }
}

fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OrderingSystem;

    fn fixture(text: &str) -> OrderingSystem {
        OrderingSystem::from_yaml(text).expect("fixture parses")
    }

    fn minimal() -> OrderingSystem {
        fixture(include_str!("../fixtures/minimal.yaml"))
    }

    fn container(pod: &Option<PodSpec>) -> &Container {
        pod.as_ref().and_then(|p| p.containers.first()).expect("one container")
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().and_then(|env| env.iter().find(|e| e.name == name))
    }

    #[test]
    fn migration_jobs_run_the_image_with_args_env_and_secret_refs() {
        let desired = desired(&minimal()).expect("builds");
        let migrate = container(&desired.migrate_job.spec.as_ref().expect("job spec").template.spec);
        assert_eq!(migrate.image.as_deref(), Some("registry.example/ordexa:0.1.0"));
        assert_eq!(migrate.args.as_deref(), Some(&["migrate".to_owned()][..]));
        let db = env_value(migrate, "ORDEXA_DATABASE_URL").expect("database URL env");
        assert!(db.value.is_none(), "the secret must not be copied into the Job");
        let selector = db.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("secretKeyRef");
        assert_eq!((selector.name.as_str(), selector.key.as_str()), ("shop-postgres", "url"));

        let schema = container(&desired.schema_job.spec.as_ref().expect("job spec").template.spec);
        assert_eq!(schema.args.as_deref(), Some(&["cassandra-schema".to_owned()][..]));
        assert_eq!(
            env_value(schema, "ORDEXA_CASSANDRA_NODES").and_then(|e| e.value.as_deref()),
            Some("cassandra:9042")
        );
        assert_eq!(env_value(schema, "ORDEXA_CASSANDRA_KEYSPACE").and_then(|e| e.value.as_deref()), Some("shop"));
        assert_eq!(
            env_value(schema, "ORDEXA_CASSANDRA_REPLICATION_FACTOR").and_then(|e| e.value.as_deref()),
            Some("1")
        );
        assert_eq!(
            desired
                .migrate_job
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.restart_policy.as_deref()),
            Some("Never")
        );
    }

    #[test]
    fn a_new_image_gets_new_job_names_and_the_same_spec_the_same_names() {
        let first = desired(&minimal()).expect("builds");
        let again = desired(&minimal()).expect("builds");
        assert_eq!(first.migrate_job.metadata.name, again.migrate_job.metadata.name);
        let mut upgraded = minimal();
        upgraded.spec.image = "registry.example/ordexa:0.2.0".to_owned();
        let upgraded = desired(&upgraded).expect("builds");
        assert_ne!(first.migrate_job.metadata.name, upgraded.migrate_job.metadata.name);
        assert_ne!(first.schema_job.metadata.name, upgraded.schema_job.metadata.name);
        let name = upgraded.migrate_job.metadata.name.clone().expect("named");
        assert!(name.starts_with("shop-migrate-") && name.len() <= 63, "{name}");
    }

    #[test]
    fn every_workload_gets_a_deployment_with_replicas_probes_resources_and_owner() {
        let system = minimal();
        let desired = desired(&system).expect("builds");
        let names: Vec<_> =
            desired.deployments.iter().map(|(_, d)| d.metadata.name.clone().unwrap_or_default()).collect();
        assert_eq!(names, ["shop-api", "shop-relay", "shop-projector", "shop-frontend"]);
        let replicas: Vec<_> = desired.deployments.iter().map(|(_, d)| d.spec.replicas).collect();
        assert_eq!(replicas, [Some(2), Some(1), Some(2), Some(1)]);
        for (workload, deployment) in &desired.deployments {
            let owner = deployment.metadata.owner_references.as_ref().and_then(|o| o.first()).expect("owner reference");
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.controller),
                ("OrderingSystem", "shop", Some(true))
            );
            let c = container(&deployment.spec.template.spec);
            assert_eq!(c.args.as_deref(), Some(&[workload.subcommand().to_owned()][..]));
            assert!(
                c.resources.as_ref().and_then(|r| r.requests.as_ref()).is_some(),
                "{workload:?} has resource requests"
            );
            let readiness = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness probe");
            let expected = if *workload == Workload::Frontend { "/" } else { "/readyz" };
            assert_eq!(readiness.path.as_deref(), Some(expected));
            let annotations =
                deployment.spec.template.metadata.as_ref().and_then(|m| m.annotations.as_ref()).expect("annotations");
            assert_eq!(annotations.get(CONFIG_HASH_ANNOTATION), Some(&desired.config_hash));
        }
        for job in [&desired.migrate_job, &desired.schema_job] {
            let c = container(&job.spec.as_ref().expect("job spec").template.spec);
            assert_eq!(c.resources, Some(default_resources()), "Jobs carry resources too");
        }
        let services: Vec<_> = desired.services.iter().map(|s| s.metadata.name.clone().unwrap_or_default()).collect();
        assert_eq!(services, ["shop-api", "shop-frontend"]);
    }

    #[test]
    fn secrets_reach_pods_only_as_secret_refs_never_through_the_config_map() {
        let desired = desired(&minimal()).expect("builds");
        let data = desired.config_map.data.as_ref().expect("config data");
        assert!(!data.keys().any(|k| k.contains("DATABASE_URL") || k.contains("JWT")), "{data:?}");
        let api = desired.deployments.iter().find(|(w, _)| *w == Workload::Api).map(|(_, d)| d).expect("api");
        let c = container(&api.spec.template.spec);
        for name in ["ORDEXA_DATABASE_URL", "ORDEXA_JWT_SECRET"] {
            let env = env_value(c, name).expect("secret env");
            assert!(
                env.value.is_none() && env.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).is_some(),
                "{name}"
            );
        }
        assert_eq!(data.get("ORDEXA_HTTP_ADDR").map(String::as_str), Some("0.0.0.0:8080"));
        assert_eq!(data.get("ORDEXA_LOG_FORMAT").map(String::as_str), Some("json"));
        assert_eq!(data.get("ORDEXA_API_UPSTREAM").map(String::as_str), Some("http://shop-api.shop.svc:8080"));
    }

    #[test]
    fn a_config_change_changes_the_config_hash_and_scaling_does_not() {
        let base = desired(&minimal()).expect("builds").config_hash;
        let mut scaled = minimal();
        scaled.spec.relay.replicas = 3;
        assert_eq!(desired(&scaled).expect("builds").config_hash, base, "scaling is not a config change");
        let mut moved = minimal();
        moved.spec.kafka.bootstrap_servers = "kafka-new:9092".to_owned();
        assert_ne!(desired(&moved).expect("builds").config_hash, base);
    }

    #[test]
    fn the_full_fixture_sets_autoscaling_disables_the_frontend_and_uses_given_resources() {
        let desired = desired(&fixture(include_str!("../fixtures/full.yaml"))).expect("builds");
        assert_eq!(desired.disabled, [Workload::Frontend]);
        assert!(desired.deployments.iter().all(|(w, _)| *w != Workload::Frontend));
        let api = desired.deployments.iter().find(|(w, _)| *w == Workload::Api).map(|(_, d)| d).expect("api");
        assert_eq!(api.spec.replicas, None, "the autoscaler owns the api's replicas");
        let hpa = desired.api_autoscaler.as_ref().expect("autoscaler");
        assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 10));
        let limits =
            container(&api.spec.template.spec).resources.as_ref().and_then(|r| r.limits.clone()).expect("limits");
        assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("1Gi"));
        assert_eq!(desired.migrate_job.spec.as_ref().and_then(|s| s.backoff_limit), Some(1));
        assert_eq!(container(&api.spec.template.spec).image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn log_level_or_resources_changes_do_not_rerun_migrations_but_a_new_database_does() {
        let base = desired(&minimal()).expect("builds");
        let mut tuned = minimal();
        tuned.spec.log_level = "debug".to_owned();
        tuned.spec.migrations.backoff_limit = Some(5);
        let tuned = desired(&tuned).expect("builds");
        assert_eq!(base.migrate_job.metadata.name, tuned.migrate_job.metadata.name);
        assert_eq!(base.schema_job.metadata.name, tuned.schema_job.metadata.name);
        let mut moved = minimal();
        moved.spec.cassandra.keyspace = "shop2".to_owned();
        let moved = desired(&moved).expect("builds");
        assert_eq!(base.migrate_job.metadata.name, moved.migrate_job.metadata.name);
        assert_ne!(base.schema_job.metadata.name, moved.schema_job.metadata.name);
    }

    #[test]
    fn building_without_a_uid_is_refused() {
        let mut system = minimal();
        system.metadata.uid = None;
        assert!(matches!(desired(&system), Err(BuildError::MissingMetadata("metadata.uid"))));
    }
}
