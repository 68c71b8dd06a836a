//! infra/k8s.sh, the test control plane's script: it refuses a busy port naming the variable to
//! change, and `env` prints what clients need.

use std::process::Command;

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/k8s.sh")
}

#[test]
fn up_refuses_a_busy_port_naming_the_variable() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = busy.local_addr().expect("address").port();
    let state = std::env::temp_dir().join(format!("ordexa-k8s-busy-{}", std::process::id()));
    let output = Command::new("bash")
        .arg(script())
        .arg("up")
        .env("ORDEXA_STATE_DIR", &state)
        .env("ORDEXA_K8S_ETCD_PORT", port.to_string())
        .output()
        .expect("k8s.sh runs");
    let _ = std::fs::remove_dir_all(&state);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a busy port must fail the start: {stderr}");
    assert!(
        stderr.contains(&format!("port {port} is already in use")) && stderr.contains("ORDEXA_K8S_ETCD_PORT"),
        "{stderr}"
    );
}

#[test]
fn env_prints_the_kubeconfig_and_helm_exports() {
    let output = Command::new("bash")
        .arg(script())
        .arg("env")
        .env("ORDEXA_STATE_DIR", "/tmp/ordexa-k8s-env-test")
        .output()
        .expect("k8s.sh runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("export KUBECONFIG=/tmp/ordexa-k8s-env-test/k8s/kubeconfig"), "{stdout}");
    assert!(stdout.contains("export ORDEXA_HELM="), "{stdout}");
}
