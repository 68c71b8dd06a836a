//! The configuration contract between the operator and `ordexa`: every `ORDEXA_*` variable the
//! operator sets on a pod is accepted by the argument parser of the role that pod runs, and the
//! values the operator gives (ConfigMap keys resolved, Secrets stood in for) parse.

use std::collections::BTreeMap;

use clap::{Arg, CommandFactory, FromArgMatches};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use ordexa::cli::Cli;
use ordexa_operator::build::desired;
use ordexa_operator::crd::OrderingSystem;

/// What a pod's Secrets would hold, by environment variable: values of the right shape.
fn secret_stand_in(name: &str) -> &'static str {
    match name {
        "ORDEXA_DATABASE_URL" => "postgres://ordexa:secret@postgres:5432/ordexa",
        "ORDEXA_JWT_SECRET" => "0123456789abcdef0123456789abcdef",
        _ => "secret",
    }
}

/// Every `ORDEXA_*` environment variable the subcommand `role` of `ordexa` accepts, global
/// arguments included, with the long flag that takes it.
fn accepted(role: &str) -> Result<BTreeMap<String, String>, String> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(role).ok_or_else(|| format!("ordexa has no subcommand {role}"))?;
    let mut names = BTreeMap::new();
    for arg in cli.get_arguments().filter(|a| a.is_global_set()).chain(sub.get_arguments()) {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            names.insert(env.to_string_lossy().into_owned(), long.to_owned());
        }
    }
    Ok(names)
}

/// The role a container runs (its first argument) and its `ORDEXA_*` variables with the values
/// the pod would see.
fn role_and_env(
    container: &Container,
    config: &BTreeMap<String, String>,
) -> Result<(String, Vec<(String, String)>), String> {
    let role = container.args.as_ref().and_then(|a| a.first()).ok_or("a container without a role")?.clone();
    let mut env = Vec::new();
    for var in container.env.iter().flatten().filter(|v| v.name.starts_with("ORDEXA_")) {
        let source = var.value_from.as_ref();
        let value = if let Some(value) = &var.value {
            value.clone()
        } else if let Some(key) = source.and_then(|s| s.config_map_key_ref.as_ref()) {
            config
                .get(&key.key)
                .cloned()
                .ok_or_else(|| format!("{}: the ConfigMap has no key {}", var.name, key.key))?
        } else if source.and_then(|s| s.secret_key_ref.as_ref()).is_some() {
            secret_stand_in(&var.name).to_owned()
        } else {
            return Err(format!("{} in the {role} container has no value and no source", var.name));
        };
        env.push((var.name.clone(), value));
    }
    assert!(
        container.env_from.is_none(),
        "the {role} container reads a whole ConfigMap; the contract lists each variable"
    );
    Ok((role, env))
}

fn containers(pod: &Option<PodSpec>) -> Vec<Container> {
    pod.as_ref().map(|p| p.containers.clone()).unwrap_or_default()
}

#[test]
fn every_variable_the_operator_sets_is_accepted_by_its_role() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = include_str!("../../../operator/fixtures/minimal.yaml");
    let system = OrderingSystem::from_yaml(manifest)?;
    let desired = desired(&system)?;
    let config = desired.config_map.data.clone().unwrap_or_default();

    let mut pods = Vec::new();
    for job in [&desired.migrate_job, &desired.schema_job] {
        let spec = job.spec.as_ref().ok_or("a Job without a spec")?;
        pods.extend(containers(&spec.template.spec));
    }
    for (_, deployment) in &desired.deployments {
        pods.extend(containers(&deployment.spec.template.spec));
    }
    let mut roles = Vec::new();
    for container in &pods {
        let (role, env) = role_and_env(container, &config)?;
        let accepted = accepted(&role)?;
        // Each variable the operator sets is one `ordexa <role>` reads; its value, given as the
        // flag that variable stands for, parses.
        let mut argv = vec!["ordexa".to_owned(), role.clone()];
        for (name, value) in &env {
            let long = accepted
                .get(name)
                .ok_or_else(|| format!("the operator sets {name} for `ordexa {role}`, which does not read it"))?;
            argv.push(format!("--{long}={value}"));
        }
        // Parsed with every environment fallback switched off, so that variables of the test's own
        // environment cannot stand in for ones the operator forgot.
        let without_env = |arg: Arg| arg.env(None);
        let command = Cli::command().mut_args(without_env).mut_subcommand(&role, |sub| sub.mut_args(without_env));
        let matches = command
            .try_get_matches_from(&argv)
            .map_err(|e| format!("`ordexa {role}` refuses what the operator gives it: {e}"))?;
        Cli::from_arg_matches(&matches)?;
        roles.push(role);
    }
    roles.sort();
    assert_eq!(roles, ["api", "cassandra-schema", "migrate", "projector", "relay", "web"], "every role is checked");
    Ok(())
}
