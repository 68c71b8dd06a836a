//! The reconciler against a real API server (with kube-controller-manager) and a real Kafka.
//! Needs `make k8s-up` and `make infra-up`; see tests/common/mod.rs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Harness, TestResult, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use ordexa_operator::build::CONFIG_HASH_ANNOTATION;
use ordexa_operator::crd::OrderingSystem;
use serde_json::json;

fn env_names(job: &k8s_openapi::api::batch::v1::Job) -> Vec<String> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn container_args(job: &k8s_openapi::api::batch::v1::Job) -> (Option<String>, Option<Vec<String>>) {
    let c = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .cloned()
        .unwrap_or_default();
    (c.image, c.args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_becomes_topics_then_jobs_then_workloads_then_ready_and_scales_and_rolls() -> TestResult {
    let h = Harness::start("lifecycle").await;
    h.apply(&h.manifest(3)).await?;

    // 1. Topics, with the requested partitions.
    wait_for("both topics with 3 partitions", || async {
        (h.topic_partitions().await == [Some(3), Some(3)]).then_some(())
    })
    .await;

    // 2. The migration Job with the right image, args and env; nothing after it yet.
    let migrate = h.wait_job("migrate").await;
    assert_eq!(
        container_args(&migrate),
        (Some("registry.example/ordexa:0.1.0".to_owned()), Some(vec!["migrate".to_owned()]))
    );
    assert!(env_names(&migrate).contains(&"ORDEXA_DATABASE_URL".to_owned()));
    assert!(h.jobs("cassandra-schema").await.is_empty(), "the schema Job waits for the migration");
    assert!(h.deployments().await.is_empty(), "no workload before the migrations");
    h.wait_condition("DatabaseMigrated", "False", Some("JobRunning")).await;

    h.finish_job_pod(&migrate, "Succeeded").await;
    let schema = h.wait_job("cassandra-schema").await;
    assert_eq!(container_args(&schema).1, Some(vec!["cassandra-schema".to_owned()]));
    assert!(env_names(&schema).contains(&"ORDEXA_CASSANDRA_NODES".to_owned()));
    assert!(h.deployments().await.is_empty(), "no workload before the Cassandra schema");

    // 3. After both Jobs: Deployments, Services and the ConfigMap.
    h.finish_job_pod(&schema, "Succeeded").await;
    let deployments = wait_for("four Deployments", || async {
        let d = h.deployments().await;
        (d.len() == 4).then_some(d)
    })
    .await;
    let mut replicas: Vec<(String, Option<i32>)> =
        deployments.iter().map(|d| (d.name_any(), d.spec.replicas)).collect();
    replicas.sort();
    assert_eq!(
        replicas,
        [
            ("shop-api".to_owned(), Some(2)),
            ("shop-frontend".to_owned(), Some(1)),
            ("shop-projector".to_owned(), Some(2)),
            ("shop-relay".to_owned(), Some(1))
        ]
    );
    wait_for("the api and frontend Services", || async {
        let services: Vec<String> = h
            .api::<Service>()
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        (services.contains(&"shop-api".to_owned()) && services.contains(&"shop-frontend".to_owned())).then_some(())
    })
    .await;
    h.api::<ConfigMap>().get("shop-config").await?;
    h.wait_condition("CassandraSchemaReady", "True", Some("JobSucceeded")).await;
    h.wait_condition("Ready", "False", None).await;

    // 4. Ready once the Deployments report available replicas.
    h.make_workloads_available().await;
    h.wait_condition("Ready", "True", Some("AllComponentsReady")).await;
    let status = h.system().await.status.expect("status");
    assert_eq!((status.api.as_deref(), status.projector.as_deref()), (Some("2/2"), Some("2/2")));
    assert_eq!(status.topic_partitions, Some(3));
    let reasons = h.event_reasons().await;
    for reason in ["TopicCreated", "JobCreated", "DeploymentApplied"] {
        assert!(reasons.iter().any(|r| r == reason), "an Event {reason} is expected among {reasons:?}");
    }

    // 5. Scaling changes replicas, without rolling the pods.
    let deployments = h.api::<Deployment>();
    let hash_before = template_config_hash(&deployments.get("shop-relay").await?);
    h.patch_spec(json!({"relay": {"replicas": 3}})).await?;
    wait_for("the relay to have 3 replicas", || async {
        (deployments.get("shop-relay").await.ok()?.spec.replicas == Some(3)).then_some(())
    })
    .await;
    assert_eq!(template_config_hash(&deployments.get("shop-relay").await?), hash_before, "scaling is no config change");

    // 6. A config change changes the config hash and so the pod-template hash (a new ReplicaSet).
    h.patch_spec(json!({"logLevel": "debug"})).await?;
    wait_for("a new api ReplicaSet", || async {
        let sets =
            h.api::<ReplicaSet>().list(&ListParams::default().labels("app.kubernetes.io/component=api")).await.ok()?;
        let hashes: BTreeSet<String> =
            sets.items.iter().filter_map(|rs| rs.labels().get("pod-template-hash").cloned()).collect();
        (hashes.len() >= 2).then_some(())
    })
    .await;
    assert_ne!(template_config_hash(&deployments.get("shop-relay").await?), hash_before);

    // 7. Partitions grow with the spec.
    h.patch_spec(json!({"kafka": {"partitions": 5}})).await?;
    wait_for("both topics grown to 5 partitions", || async {
        (h.topic_partitions().await == [Some(5), Some(5)]).then_some(())
    })
    .await;

    // 8. Delete: the finalizer keeps the topics (Retain), the garbage collector removes the rest.
    h.api::<OrderingSystem>().delete("shop", &DeleteParams::default()).await?;
    wait_for("the OrderingSystem to be gone", || async {
        h.api::<OrderingSystem>().get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_for("owned Deployments, Jobs, Services and ConfigMaps to be gone", || async {
        let no_deployments = h.deployments().await.is_empty();
        let no_jobs = h.jobs("migrate").await.is_empty() && h.jobs("cassandra-schema").await.is_empty();
        let no_services = h.api::<Service>().list(&ListParams::default()).await.ok()?.items.is_empty();
        let no_config = h.api::<ConfigMap>().get_opt("shop-config").await.ok()?.is_none();
        (no_deployments && no_jobs && no_services && no_config).then_some(())
    })
    .await;
    assert_eq!(h.topic_partitions().await, [Some(5), Some(5)], "Retain keeps the topics");
    h.delete_topics().await;
    h.finish().await;
    Ok(())
}

fn template_config_hash(deployment: &Deployment) -> Option<String> {
    deployment.spec.template.metadata.as_ref()?.annotations.as_ref()?.get(CONFIG_HASH_ANNOTATION).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_job_is_named_in_a_condition_and_nothing_rolls_out() -> TestResult {
    let h = Harness::start("failed-migration").await;
    let mut manifest = h.manifest(1);
    manifest["spec"]["migrations"] = json!({"backoffLimit": 0});
    h.apply(&manifest).await?;
    let migrate = h.wait_job("migrate").await;
    h.finish_job_pod(&migrate, "Failed").await;

    let message = h.wait_condition("DatabaseMigrated", "False", Some("JobFailed")).await;
    assert!(message.contains(&migrate.name_any()), "the condition must name the Job: {message}");
    h.wait_condition("Ready", "False", Some("JobFailed")).await;
    h.wait_condition("ApiAvailable", "False", Some("WaitingForMigrations")).await;
    // Give the controller time to (wrongly) go on; nothing may appear.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(h.deployments().await.is_empty(), "no workload may roll out after a failed migration");
    assert!(h.jobs("cassandra-schema").await.is_empty(), "the schema Job waits for a successful migration");
    assert!(h.event_reasons().await.iter().any(|r| r == "JobFailed"), "a Warning Event reports the failure");

    // The fix: a new image gets a new Job that runs again; once it succeeds the rollout goes on,
    // and the failed Job of the old image is cleaned up.
    h.patch_spec(json!({"image": "registry.example/ordexa:0.1.1"})).await?;
    let retry = wait_for("a second migration Job for the new image", || async {
        h.jobs("migrate").await.into_iter().find(|j| j.name_any() != migrate.name_any())
    })
    .await;
    assert_eq!(container_args(&retry).0.as_deref(), Some("registry.example/ordexa:0.1.1"));
    h.finish_job_pod(&retry, "Succeeded").await;
    let schema = h.wait_job("cassandra-schema").await;
    h.finish_job_pod(&schema, "Succeeded").await;
    h.wait_condition("DatabaseMigrated", "True", Some("JobSucceeded")).await;
    wait_for("four Deployments of the new image", || async { (h.deployments().await.len() == 4).then_some(()) }).await;
    wait_for("the failed Job to be deleted", || async {
        h.jobs("migrate")
            .await
            .iter()
            .all(|j| j.name_any() != migrate.name_any() || j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    h.delete_topics().await;
    h.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_by_the_api_server_with_the_reason() -> TestResult {
    let h = Harness::start("invalid").await;
    let refused = |patch: serde_json::Value, expected: &'static str| {
        let mut manifest = h.manifest(1);
        json_merge(&mut manifest["spec"], &patch);
        let h = &h;
        async move {
            let err = h.apply(&manifest).await.expect_err(&format!("the API server must refuse {patch}"));
            let text = err.to_string();
            assert!(text.contains(expected), "refusal of {patch} should mention {expected:?}: {text}");
        }
    };
    refused(json!({"kafka": {"partitions": 0}}), "spec.kafka.partitions").await;
    refused(json!({"relay": {"replicas": -1}}), "spec.relay.replicas").await;
    refused(json!({"api": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}), "minReplicas must not exceed").await;
    refused(json!({"kafka": {"partition": 3}}), "spec.kafka.partition").await;
    refused(json!({"image": ""}), "spec.image").await;
    refused(json!({"cassandra": {"nodes": "cassandra:9042"}}), "spec.cassandra.nodes").await;
    refused(json!({"frontend": {"service": {"nodePort": 30080}}}), "nodePort needs type NodePort").await;
    refused(json!({"kafka": {"topicDeletionPolicy": "Purge"}}), "spec.kafka.topicDeletionPolicy").await;

    // Transition rule: the topic prefix cannot change once set.
    h.apply(&h.manifest(1)).await?;
    let err = h.patch_spec(json!({"kafka": {"topicPrefix": "other."}})).await.expect_err("topicPrefix is immutable");
    assert!(err.to_string().contains("topicPrefix is immutable"), "{err}");
    h.api::<OrderingSystem>().delete("shop", &DeleteParams::default()).await?;
    h.delete_topics().await;
    h.finish().await;
    Ok(())
}

fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_decrease_is_refused_and_reported_in_a_condition() -> TestResult {
    let h = Harness::start("shrink").await;
    h.apply(&h.manifest(4)).await?;
    wait_for("both topics with 4 partitions", || async {
        (h.topic_partitions().await == [Some(4), Some(4)]).then_some(())
    })
    .await;
    h.patch_spec(json!({"kafka": {"partitions": 2}})).await?;
    let message = h.wait_condition("TopicsReady", "False", Some("PartitionDecreaseRefused")).await;
    assert!(message.contains("4 partitions") && message.contains("spec.kafka.partitions"), "{message}");
    h.wait_condition("Ready", "False", Some("PartitionDecreaseRefused")).await;
    assert_eq!(h.topic_partitions().await, [Some(4), Some(4)], "Kafka keeps its partitions");
    assert!(h.event_reasons().await.iter().any(|r| r == "PartitionDecreaseRefused"));
    h.delete_topics().await;
    h.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_systems_report_status_change_nothing_resume_and_delete_with_their_topics() -> TestResult {
    let h = Harness::start("pause").await;
    let mut manifest = h.manifest(2);
    manifest["spec"]["paused"] = json!(true);
    manifest["spec"]["kafka"]["topicDeletionPolicy"] = json!("Delete");
    h.apply(&manifest).await?;

    let message = h.wait_condition("Ready", "False", Some("Paused")).await;
    assert!(message.contains("spec.paused"), "{message}");
    h.wait_condition("TopicsReady", "False", None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.topic_partitions().await, [None, None], "a paused system creates no topic");
    assert!(h.jobs("migrate").await.is_empty(), "a paused system creates no Job");

    manifest["spec"]["paused"] = json!(false);
    h.apply(&manifest).await?;
    h.wait_job("migrate").await;
    wait_for("both topics", || async { (h.topic_partitions().await == [Some(2), Some(2)]).then_some(()) }).await;
    h.migrate().await;
    wait_for("four Deployments", || async { (h.deployments().await.len() == 4).then_some(()) }).await;

    // Paused again: a spec change is not applied, but status stays fresh.
    manifest["spec"]["paused"] = json!(true);
    manifest["spec"]["relay"]["replicas"] = json!(4);
    h.apply(&manifest).await?;
    h.wait_condition("Ready", "False", Some("Paused")).await;
    h.make_workloads_available().await;
    h.wait_condition("ApiAvailable", "True", None).await;
    let relay = h.api::<Deployment>().get("shop-relay").await?;
    assert_eq!(relay.spec.replicas, Some(1), "paused: the scale change waits");

    // Deleting a paused system works, and the Delete policy removes the topics.
    h.api::<OrderingSystem>().delete("shop", &DeleteParams::default()).await?;
    wait_for("the OrderingSystem to be gone", || async {
        h.api::<OrderingSystem>().get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_for("the topics to be deleted", || async { (h.topic_partitions().await == [None, None]).then_some(()) }).await;
    h.finish().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_ready_system_makes_no_writes_for_60_seconds() -> TestResult {
    let h = Harness::start("idle").await;
    h.apply(&h.manifest(1)).await?;
    h.migrate().await;
    wait_for("four Deployments", || async { (h.deployments().await.len() == 4).then_some(()) }).await;
    h.make_workloads_available().await;
    h.wait_condition("Ready", "True", None).await;
    // Let the last status write and its watch events settle, then count.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = h.writes.take();
    assert!(!before.is_empty(), "the controller's writes are recorded (else this test proves nothing)");
    let version = h.system().await.resource_version();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let writes = h.writes.take();
    assert!(writes.is_empty(), "an idle Ready system must not write; it sent: {writes:#?}");
    assert_eq!(h.system().await.resource_version(), version, "the OrderingSystem did not change");
    h.delete_topics().await;
    h.finish().await;
    Ok(())
}
