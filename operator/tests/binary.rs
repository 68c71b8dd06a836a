//! The `ordexa-operator` binary: `crd` prints the checked-in CRD; `run` with two replicas
//! elects one leader through a Lease, serves metrics, and on SIGTERM shuts down cleanly and
//! hands the Lease over. Needs the test API server and Kafka (see tests/common/mod.rs).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Harness, wait_for};
use k8s_openapi::api::coordination::v1::Lease;

const BINARY: &str = env!("CARGO_BIN_EXE_ordexa-operator");

#[test]
fn crd_prints_the_checked_in_crd() {
    let output = Command::new(BINARY).arg("crd").output().expect("ordexa-operator crd runs");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(printed, include_str!("../../crds/orderingsystems.ordexa.io.yaml"), "run `make crds`");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("local address").port()
}

struct Replica {
    identity: String,
    port: u16,
    child: Child,
}

impl Replica {
    fn start(identity: &str, namespace: &str) -> Self {
        let port = free_port();
        let child = Command::new(BINARY)
            .args(["run", "--watch-namespace", namespace, "--lease-namespace", namespace, "--identity", identity])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ordexa-operator run starts");
        Self { identity: identity.to_owned(), port, child }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, response))
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("{} did not stop within 20 s of SIGTERM", self.identity);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_serve_metrics_and_hand_over_on_sigterm() {
    // The harness's in-process controller is not used here: the binaries reconcile.
    let h = Harness::start_without_controller("binary").await;
    let mut a = Replica::start("replica-a", &h.namespace);
    let mut b = Replica::start("replica-b", &h.namespace);
    let leases = h.api::<Lease>();
    let holder = || async { leases.get_opt("ordexa-operator").await.ok()??.spec?.holder_identity };
    let first = wait_for("a leader", || async { holder().await }).await;
    assert!(first == "replica-a" || first == "replica-b", "{first}");

    // Both are healthy and ready (a standby is ready to take over).
    for replica in [&a, &b] {
        let healthy =
            wait_for("/readyz", || async { replica.get("/readyz").await.filter(|(code, _)| *code == 200) }).await;
        assert_eq!(healthy.0, 200);
    }

    // The leader reconciles; its metrics count it.
    h.apply(&h.manifest(1)).await.expect("manifest applies");
    h.wait_job("migrate").await;
    let (leader, standby) = if first == "replica-a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    let metrics = wait_for("reconcile metrics", || async {
        leader.get("/metrics").await.filter(|(_, body)| body.contains("ordexa_operator_reconciles_total"))
    })
    .await;
    assert!(metrics.1.contains("ordexa_operator_reconcile_duration_seconds"), "{}", metrics.1);

    // SIGTERM: a clean exit, the Lease released, the standby takes over.
    let status = leader.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let next = wait_for("the standby to take the Lease", || async { holder().await.filter(|h| *h != first) }).await;
    assert_eq!(next, standby.identity);
    let status = standby.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    h.delete_topics().await;
    h.finish().await;
}
