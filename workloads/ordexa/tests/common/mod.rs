//! Shared by the relay process tests: a migrated database, the topics, order traffic through
//! the real write model, and relay processes that can be killed.

#![allow(dead_code)] // each test file uses a different part

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ordexa_domain::{ItemRequest, OrderId, Transition};
use ordexa_store::{Actor, CreateOrder, CreateOutcome, OrderChange, Store};
use ordexa_testkit::{self as kit, Failure, TestDatabase};

pub struct World {
    pub db: TestDatabase,
    pub store: Store,
    pub prefix: String,
}

impl World {
    /// A migrated database with the development catalog, and fresh topics.
    pub async fn new(partitions: i32) -> Result<World, Failure> {
        let db = TestDatabase::create().await?;
        let pool = ordexa_store::connect(&db.url, 16).await?;
        ordexa_store::migrate(&pool).await?;
        let store = Store::new(pool);
        store.seed_dev_catalog().await?;
        let prefix = format!("{}.", kit::unique_name("relaytest"));
        ordexa_topics::ensure_topics(&kit::kafka_bootstrap()?, &prefix, partitions, 1).await?;
        Ok(World { db, store, prefix })
    }

    pub fn topic(&self) -> String {
        ordexa_topics::orders_topic(&self.prefix)
    }

    pub async fn outbox_len(&self) -> Result<i64, Failure> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(self.store.pool()).await?)
    }

    /// Waits until the relays have emptied the outbox.
    pub async fn wait_drained(&self, within: Duration) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.outbox_len().await?;
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{left} outbox rows still unpublished after {within:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn finish(self) -> kit::TestResult {
        self.store.pool().close().await;
        self.db.drop_database().await
    }
}

/// Places one order and drives it through `changes` more commands (address revisions, then
/// confirm and ship), so it ends at version `changes + 1`. Returns its id.
pub async fn order_with_history(store: &Store, user: &str, changes: usize) -> Result<OrderId, Failure> {
    let created = store
        .create_order(CreateOrder {
            user_id: user.to_owned(),
            items: vec![ItemRequest { sku: "MUG-CERAMIC".into(), quantity: 1 }],
            shipping_address: kit::shipping_address("1 Main Street"),
            idempotency: None,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        })
        .await?;
    let CreateOutcome::Created { order, .. } = created else { return Err("unexpected idempotent replay".into()) };
    let actor = Actor { user_id: "staff".into(), is_admin: true };
    for step in 0..changes {
        let change = match changes - step {
            2 if changes >= 2 => OrderChange::Transition(Transition::Confirm),
            1 if changes >= 2 => OrderChange::Transition(Transition::Ship),
            _ => OrderChange::Revise {
                items: None,
                shipping_address: Some(kit::shipping_address(&format!("{step} Revision Road"))),
            },
        };
        store
            .change_order(order.id, &actor, change, None, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .await?;
    }
    Ok(order.id)
}

/// An `ordexa relay` process, killed when dropped so a failing test leaves none behind.
pub struct Relay(Option<Child>);

impl Relay {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process, as `kill -<signal>` would.
    pub fn signal(&self, signal: &str) -> Result<(), Failure> {
        let pid = self.pid().ok_or("the process is not running")?;
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
        if !status.success() {
            return Err(format!("kill -{signal} {pid} failed: {status}").into());
        }
        Ok(())
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) -> Result<(), Failure> {
        if let Some(child) = self.0.as_mut() {
            child.kill()?;
            child.wait()?;
        }
        self.0 = None;
        Ok(())
    }

    /// SIGTERM, as Kubernetes would, and the exit must be clean.
    pub fn terminate(mut self) -> Result<(), Failure> {
        match self.0.take() {
            Some(child) => terminate(child),
            None => Ok(()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts an `ordexa relay` for this world.
pub fn spawn_relay(world: &World, http_port: u16) -> Result<Relay, Failure> {
    Ok(Relay(Some(
        Command::new(env!("CARGO_BIN_EXE_ordexa"))
            .arg("relay")
            .env("ORDEXA_DATABASE_URL", &world.db.url)
            .env("ORDEXA_KAFKA_BOOTSTRAP", kit::kafka_bootstrap()?)
            .env("ORDEXA_TOPIC_PREFIX", &world.prefix)
            .env("ORDEXA_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("ORDEXA_RELAY_POLL_INTERVAL", "200ms")
            // Small batches, several in flight: the tests cross kills and outages with many
            // overlapping batches, each claimed while earlier ones wait for Kafka.
            .env("ORDEXA_RELAY_BATCH_SIZE", "50")
            .env("ORDEXA_RELAY_BATCHES_IN_FLIGHT", "4")
            .env("RUST_LOG", "error,ordexa_relay=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    )))
}

/// The value of the metric `name` (without labels) on the process's `/metrics` at `port`.
pub async fn metric(client: &reqwest::Client, port: u16, name: &str) -> Result<Option<f64>, Failure> {
    let text = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok()))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn terminate(mut child: Child) -> Result<(), Failure> {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Err(format!("relay exited with {status} on SIGTERM").into());
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    Err("relay did not stop within 20 s of SIGTERM".into())
}

/// A fresh keyspace with the read model's current schema, for projector processes.
pub async fn read_model_keyspace() -> Result<(String, ordexa_readmodel::ReadModel), Failure> {
    let keyspace = kit::unique_name("ordexatest");
    let session = ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?;
    ordexa_readmodel::apply_schema(&session, &keyspace, &ordexa_readmodel::Replication::Simple(1)).await?;
    let model = ordexa_readmodel::ReadModel::new(session, &keyspace).await?;
    Ok((keyspace, model))
}

/// Starts an `ordexa projector` for this world, writing into `keyspace`.
pub fn spawn_projector(world: &World, keyspace: &str, http_port: u16) -> Result<Relay, Failure> {
    Ok(Relay(Some(
        Command::new(env!("CARGO_BIN_EXE_ordexa"))
            .arg("projector")
            .env("ORDEXA_KAFKA_BOOTSTRAP", kit::kafka_bootstrap()?)
            .env("ORDEXA_TOPIC_PREFIX", &world.prefix)
            .env("ORDEXA_CASSANDRA_NODES", kit::cassandra_nodes()?.join(","))
            .env("ORDEXA_CASSANDRA_KEYSPACE", keyspace)
            .env("ORDEXA_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env(
                "RUST_LOG",
                std::env::var("ORDEXA_TEST_PROJECTOR_LOG").unwrap_or_else(|_| "error,ordexa_projector=info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    )))
}

/// Runs `infra/<server>.sh <action>` (start, stop, kill).
pub fn server_script(server: &str, action: &str) -> kit::TestResult {
    let script = format!("{}/../../infra/{server}.sh", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash").arg(script).arg(action).status()?;
    if !status.success() {
        return Err(format!("infra/{server}.sh {action} failed: {status}").into());
    }
    Ok(())
}
