//! The `OrderingSystem` custom resource (`ordexa.io/v1alpha1`): spec, status and the CRD that
//! `ordexa-operator crd` prints. Pure types; nothing here talks to a server.
//!
//! Validation lives in the schema where the API server can enforce it (ranges, enums, required
//! fields, CEL rules), so a bad manifest is refused by `kubectl apply` rather than discovered
//! later in a condition.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An Ordexa ordering system: topics, database migrations and the api, relay, projector and
/// frontend workloads, reconciled from one manifest.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "ordexa.io",
    version = "v1alpha1",
    kind = "OrderingSystem",
    plural = "orderingsystems",
    shortname = "osys",
    category = "ordexa",
    namespaced,
    status = "OrderingSystemStatus",
    doc = "An Ordexa ordering system reconciled by ordexa-operator",
    // Helm keeps the CRD on uninstall: deleting it would delete every OrderingSystem.
    annotation("helm.sh/resource-policy", "keep"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"API","type":"string","jsonPath":".status.api"}"#,
    printcolumn = r#"{"name":"Relay","type":"string","jsonPath":".status.relay"}"#,
    printcolumn = r#"{"name":"Projector","type":"string","jsonPath":".status.projector"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderingSystemSpec {
    /// The workload image (one image runs every role by its subcommand), e.g.
    /// `registry.example/ordexa:0.1.0`. A change re-runs the migration Jobs, then rolls the
    /// workloads.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy of every pod; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// The PostgreSQL write model.
    pub postgres: PostgresSpec,
    /// Kafka and the system's topics.
    pub kafka: KafkaSpec,
    /// The Cassandra read model.
    pub cassandra: CassandraSpec,
    /// Bearer-token authentication.
    pub auth: AuthSpec,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiSpec,
    /// The outbox relay (Postgres to Kafka).
    #[serde(default)]
    pub relay: WorkloadSpec,
    /// The projector (Kafka to Cassandra).
    #[serde(default)]
    pub projector: WorkloadSpec,
    /// The web frontend, which serves the SPA and forwards `/api` to the api Service.
    #[serde(default)]
    pub frontend: FrontendSpec,
    /// The migration and schema Jobs.
    #[serde(default)]
    pub migrations: MigrationsSpec,
    /// `RUST_LOG` of every pod.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Stop changing anything: no topic, Job or workload is created, changed or deleted while
    /// paused. Status stays fresh and deletion still works.
    #[serde(default)]
    pub paused: bool,
}

/// A key of a Secret in the OrderingSystem's namespace. Secrets reach pods only as
/// `secretKeyRef` environment variables; the operator never reads or copies their values.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSpec {
    /// The Secret key holding the `postgres://…` URL (`ORDEXA_DATABASE_URL`).
    pub url_secret_ref: SecretKeyRef,
}

/// What happens to the topics when the OrderingSystem is deleted.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum TopicDeletionPolicy {
    /// Keep the topics and their events (the default): deleting a manifest never loses data.
    #[default]
    Retain,
    /// Delete `<prefix>orders` and `<prefix>orders.dlq` with the OrderingSystem.
    Delete,
}

#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.topicPrefix) == has(oldSelf.topicPrefix) && (!has(self.topicPrefix) || self.topicPrefix == oldSelf.topicPrefix)").message("topicPrefix is immutable: the events live in the old topics; create a new OrderingSystem to use other topics"))]
pub struct KafkaSpec {
    /// `host:port[,host:port…]` (`ORDEXA_KAFKA_BOOTSTRAP`).
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// Prefix of the topic names: `<prefix>orders` and `<prefix>orders.dlq`. Immutable. Default:
    /// `<namespace>.<name>.`, so that two systems on one Kafka never share topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]{0,200}$"))]
    pub topic_prefix: Option<String>,
    /// Partitions of both topics. Growing adds partitions; shrinking is refused (Kafka cannot
    /// remove partitions) and reported in the `TopicsReady` condition.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: i32,
    /// Replication factor of newly created topics.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,
    /// `Retain` (default) keeps the topics when the OrderingSystem is deleted; `Delete`
    /// deletes them.
    #[serde(default)]
    pub topic_deletion_policy: TopicDeletionPolicy,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CassandraSpec {
    /// Contact points, `host:port` each (`ORDEXA_CASSANDRA_NODES`).
    #[schemars(length(min = 1))]
    pub nodes: Vec<String>,
    /// Keyspace of the read model (`ORDEXA_CASSANDRA_KEYSPACE`).
    #[serde(default = "default_keyspace")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$"))]
    pub keyspace: String,
    /// Replication factor of the keyspace when the schema Job creates it.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSpec {
    /// The Secret key holding the HS256 secret for bearer tokens (`ORDEXA_JWT_SECRET`).
    pub jwt_secret_ref: SecretKeyRef,
}

/// Replicas and resources of one workload.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Number of pods.
    #[serde(default = "default_one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory of each pod; the operator's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self { replicas: 1, resources: None }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSpec {
    /// Number of pods (ignored while `autoscaling` is set).
    #[serde(default = "default_api_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory of each pod; the operator's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A HorizontalPodAutoscaler for the api Deployment; replicas are then the HPA's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self { replicas: default_api_replicas(), resources: None, autoscaling: None }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the request) the HPA aims for.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrontendSpec {
    /// Run the frontend (Deployment and Service). Turning it off deletes both.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Number of pods.
    #[serde(default = "default_one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory of each pod; the operator's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How the frontend's Service is exposed (ClusterIP by default).
    #[serde(default)]
    pub service: FrontendServiceSpec,
}

impl Default for FrontendSpec {
    fn default() -> Self {
        Self { enabled: true, replicas: 1, resources: None, service: FrontendServiceSpec::default() }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.nodePort) || self.type != 'ClusterIP'").message("frontend.service.nodePort needs type NodePort or LoadBalancer"))]
pub struct FrontendServiceSpec {
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// A fixed node port (30000-32767) for `NodePort`/`LoadBalancer`; allocated when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationsSpec {
    /// CPU and memory of the migration and schema Job pods; the operator's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Retries of a failed Job pod before the Job counts as failed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: Option<i32>,
}

/// What the operator last saw and did. Conditions answer "why is it not ready?".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderingSystemStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `TopicsReady`, `DatabaseMigrated`, `CassandraSchemaReady`, `ApiAvailable`,
    /// `RelayAvailable`, `ProjectorAvailable`, `FrontendAvailable`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The image whose migration and schema Jobs succeeded last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
    /// Partitions of the orders topic as last seen in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_partitions: Option<i32>,
    /// Available/desired pods of the api, e.g. `2/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Available/desired pods of the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// Available/desired pods of the projector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<String>,
    /// Available/desired pods of the frontend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<String>,
}

fn default_log_level() -> String {
    "info".to_owned()
}
fn default_keyspace() -> String {
    "ordexa".to_owned()
}
fn default_partitions() -> i32 {
    6
}
fn default_one() -> i32 {
    1
}
fn default_api_replicas() -> i32 {
    2
}
fn default_cpu_target() -> i32 {
    75
}
fn default_true() -> bool {
    true
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid OrderingSystem manifest at `{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl OrderingSystem {
    /// `<namespace>.<name>.`: unique per system in a cluster.
    fn identity(&self) -> String {
        format!(
            "{}.{}.",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The topic prefix in force: `spec.kafka.topicPrefix`, else `<namespace>.<name>.`.
    pub fn topic_prefix(&self) -> String {
        self.spec.kafka.topic_prefix.clone().unwrap_or_else(|| self.identity())
    }

    /// The projectors' consumer group, `<namespace>.<name>.projector`: never shared with another
    /// system, even one given the same topic prefix.
    pub fn consumer_group(&self) -> String {
        format!("{}projector", self.identity())
    }

    /// The relays' Kafka `transactional.id`, `<namespace>.<name>.relay`: a system's relays fence
    /// each other, never another system's.
    pub fn transactional_id(&self) -> String {
        format!("{}relay", self.identity())
    }

    /// Reads one manifest, naming the offending field on error (unknown fields and wrong types
    /// included), as the API server would refuse it.
    pub fn from_yaml(text: &str) -> Result<Self, ManifestError> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|err| ManifestError::Invalid { path: err.path().to_string(), message: err.inner().to_string() })
    }
}

/// The CRD as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let header = "# Generated by `ordexa-operator crd` from operator/src/crd.rs: edit the Rust types, then\n# run `make crds`. A test fails when this file and the code disagree.\n";
    Ok(format!("{header}{}", serde_yaml::to_string(&OrderingSystem::crd())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_systems_never_share_topics_group_or_transactional_id_by_default() -> Result<(), ManifestError> {
        let manifest = |namespace: &str, name: &str, prefix: &str| {
            let spec = format!(
                "{{image: ordexa:1, postgres: {{urlSecretRef: {{name: pg, key: url}}}}, \
                 kafka: {{bootstrapServers: \"kafka:9092\"{prefix}}}, cassandra: {{nodes: [\"c:9042\"]}}, \
                 auth: {{jwtSecretRef: {{name: jwt, key: secret}}}}}}"
            );
            format!(
                "apiVersion: ordexa.io/v1alpha1\nkind: OrderingSystem\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
            )
        };
        let shop = OrderingSystem::from_yaml(&manifest("retail", "shop", ""))?;
        let outlet = OrderingSystem::from_yaml(&manifest("retail", "outlet", ""))?;
        assert_eq!(shop.topic_prefix(), "retail.shop.");
        assert_ne!(shop.topic_prefix(), outlet.topic_prefix());
        // Given the same prefix, two systems share topics on purpose, but never a group or an id.
        let same = OrderingSystem::from_yaml(&manifest("retail", "outlet", ", topicPrefix: retail.shop."))?;
        assert_eq!(same.topic_prefix(), shop.topic_prefix());
        assert_ne!(same.consumer_group(), shop.consumer_group());
        assert_ne!(same.transactional_id(), shop.transactional_id());
        assert_eq!(shop.consumer_group(), "retail.shop.projector");
        Ok(())
    }

    #[test]
    fn checked_in_crds_match_the_rust_types() {
        let generated = crd_yaml().expect("the CRD renders");
        for (path, checked_in) in [
            ("crds/orderingsystems.ordexa.io.yaml", include_str!("../../crds/orderingsystems.ordexa.io.yaml")),
            (
                "charts/ordexa-operator/files/orderingsystems.ordexa.io.yaml",
                include_str!("../../charts/ordexa-operator/files/orderingsystems.ordexa.io.yaml"),
            ),
        ] {
            assert!(
                generated == checked_in,
                "{path} is out of date with operator/src/crd.rs; run `make crds` and commit the result"
            );
        }
    }

    #[test]
    fn the_contracts_smallest_manifest_is_accepted_with_defaults() {
        let system =
            OrderingSystem::from_yaml(include_str!("../fixtures/minimal.yaml")).expect("minimal manifest parses");
        let spec = &system.spec;
        assert_eq!(spec.kafka.topic_deletion_policy, TopicDeletionPolicy::Retain, "topics are retained by default");
        assert_eq!((spec.api.replicas, spec.relay.replicas, spec.projector.replicas), (2, 1, 2));
        assert!(spec.frontend.enabled);
        assert_eq!(spec.log_level, "info");
        assert!(!spec.paused);
    }

    #[test]
    fn an_unknown_field_is_refused_naming_it() {
        let err = OrderingSystem::from_yaml(include_str!("../fixtures/bad-unknown-field.yaml"))
            .expect_err("a typo must be refused");
        let text = err.to_string();
        assert!(
            text.contains("spec.kafka") && text.contains("partition"),
            "error should name spec.kafka.partition: {text}"
        );
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn a_wrong_type_is_refused_naming_the_field() {
        let err = OrderingSystem::from_yaml(include_str!("../fixtures/bad-wrong-type.yaml"))
            .expect_err("a string replica count must be refused");
        let text = err.to_string();
        assert!(text.contains("spec.relay.replicas"), "error should name spec.relay.replicas: {text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn every_example_manifest_is_a_valid_ordering_system() {
        for (path, text) in [
            ("examples/shop.yaml", include_str!("../../examples/shop.yaml")),
            ("examples/production.yaml", include_str!("../../examples/production.yaml")),
        ] {
            let systems: Vec<_> = text.split("\n---\n").filter(|doc| doc.contains("kind: OrderingSystem")).collect();
            assert_eq!(systems.len(), 1, "{path} holds one OrderingSystem");
            for doc in systems {
                if let Err(err) = OrderingSystem::from_yaml(doc) {
                    panic!("{path}: {err}");
                }
            }
        }
    }

    #[test]
    fn the_schema_enforces_ranges_and_cel_rules() {
        let crd = serde_json::to_value(OrderingSystem::crd()).expect("CRD serialises");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["kafka"]["properties"]["partitions"]["minimum"], 1.0);
        assert_eq!(spec["relay"]["properties"]["replicas"]["minimum"], 0.0);
        assert!(
            spec["kafka"]["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .is_some_and(|rule| rule.contains("self.topicPrefix == oldSelf.topicPrefix")),
            "{}",
            spec["kafka"]["x-kubernetes-validations"]
        );
        assert_eq!(
            spec["api"]["properties"]["autoscaling"]["x-kubernetes-validations"][0]["rule"],
            "self.minReplicas <= self.maxReplicas"
        );
        assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], serde_json::json!({}));
        let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Ready", "API", "Relay", "Projector", "Age"]);
        let service = &spec["frontend"]["properties"]["service"];
        assert!(service["x-kubernetes-validations"][0]["rule"].as_str().is_some_and(|r| r.contains("nodePort")));
    }
}
