//! The Helm chart: `helm lint`, `helm template`, and the rendered objects accepted by the real
//! API server (server-side dry run). Needs ORDEXA_HELM (from `make -s k8s-env`; `make k8s-up`
//! builds helm) and the test API server.

mod common;

use std::path::PathBuf;
use std::process::Command;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;
use kube::{Api, ResourceExt};
use serde_json::Value;

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ordexa-operator")
}

fn helm(args: &[&str]) -> String {
    let helm = std::env::var("ORDEXA_HELM")
        .expect("ORDEXA_HELM is not set: run `make k8s-up` and `eval \"$(make -s k8s-env)\"`");
    let output = Command::new(&helm).args(args).output().unwrap_or_else(|err| panic!("cannot run {helm}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "helm {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    // helm built from its module (no release ldflags) assumes Kubernetes 1.20; say which one.
    let mut args = vec!["template", "ordexa", chart, "--namespace", "ordexa-system", "--kube-version", "1.37.2"];
    args.extend_from_slice(extra);
    let text = helm(&args);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("rendered YAML parses"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs.iter().map(|d| d["kind"].as_str().unwrap_or_default().to_owned()).collect();
    kinds.sort();
    kinds
}

#[test]
fn the_chart_passes_helm_lint_strictly() {
    let chart = chart_dir();
    let out = helm(&["lint", "--strict", chart.to_str().expect("utf-8 path")]);
    assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
}

#[test]
fn the_chart_renders_the_operator_with_its_crd_and_least_privilege_rbac() {
    let docs = render(&[]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let crd = docs.iter().find(|d| d["kind"] == "CustomResourceDefinition").expect("CRD");
    let generated = serde_json::to_value(<ordexa_operator::crd::OrderingSystem as kube::CustomResourceExt>::crd())
        .expect("CRD json");
    assert_eq!(crd, &generated, "the chart's CRD is the one generated from the Rust types");
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "uninstall keeps the CRD");

    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").expect("ClusterRole");
    let rules = role["rules"].as_array().expect("rules");
    for rule in rules {
        let resources: Vec<&str> =
            rule["resources"].as_array().expect("resources").iter().filter_map(Value::as_str).collect();
        assert!(!resources.contains(&"secrets"), "the operator never reads Secrets: {rule}");
        assert!(!resources.contains(&"*"), "no wildcard resources: {rule}");
        let verbs: Vec<&str> = rule["verbs"].as_array().expect("verbs").iter().filter_map(Value::as_str).collect();
        assert!(!verbs.contains(&"*"), "no wildcard verbs: {rule}");
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ordexa-operator:0.1.0");
    assert_eq!(container["args"][0], "run");
    assert!(container["resources"]["requests"]["cpu"].is_string(), "the operator pod has resources");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

#[test]
fn values_turn_off_the_crd_and_leader_election_and_set_the_image() {
    let docs = render(&[
        "--set",
        "crd.install=false",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "replicaCount=3",
    ]);
    assert_eq!(kinds(&docs), ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "ordexa-operator:1.2.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_objects_are_accepted_by_the_api_server() {
    let client = common::client().await;
    let discovery = Discovery::new(client.clone()).run().await.expect("API discovery");
    let namespace = format!("it-chart-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).expect("namespace");
    namespaces.create(&kube::api::PostParams::default(), &ns).await.expect("namespace is created");
    let docs = render(&["--namespace", &namespace]);
    for doc in docs {
        let object: DynamicObject = serde_json::from_value(doc.clone()).expect("a Kubernetes object");
        let types = object.types.clone().expect("apiVersion and kind");
        let (group, version) = types.api_version.split_once('/').unwrap_or(("", types.api_version.as_str()));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, caps): (ApiResource, _) =
            discovery.resolve_gvk(&gvk).unwrap_or_else(|| panic!("{gvk:?} is served"));
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let mut params = PatchParams::apply("ordexa-chart-test").force();
        params.dry_run = true;
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        api.patch(&object.name_any(), &params, &Patch::Apply(&doc))
            .await
            .unwrap_or_else(|err| panic!("the API server refuses {} {}: {err}", types.kind, object.name_any()));
    }
    namespaces.delete(&namespace, &kube::api::DeleteParams::default()).await.expect("namespace is deleted");
}
