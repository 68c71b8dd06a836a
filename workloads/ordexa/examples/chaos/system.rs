//! The system under test: the suite's own PostgreSQL, Kafka and Cassandra (driven through
//! `infra/<server>.sh`, which read the ports and the state folder from the environment), and
//! the workload processes — two each of `ordexa api`, `ordexa relay` and `ordexa projector` —
//! which it starts, kills, stops, continues and restarts, and whose ops endpoints it probes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::timeline::{Clock, secs, wall_clock};

/// The checkout's root, where `infra/` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `infra/<script>.sh <args>` with the suite's environment (its ports, its state folder),
/// appending the script's output to `log`; a failure names the script and shows the log's end.
pub fn infra(script: &str, args: &[&str], log: &Path) -> Result<()> {
    let path = repo_root().join("infra").join(format!("{script}.sh"));
    let mut out = OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(out, "----- {} infra/{script}.sh {} -----", wall_clock(), args.join(" "))?;
    let status = Command::new("bash")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()?;
    if !status.success() {
        return Err(
            format!("infra/{script}.sh {} failed ({status}); its output:\n{}", args.join(" "), tail(log, 30)).into()
        );
    }
    Ok(())
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What the workloads are told: the run's database, topics and keyspace.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The `ordexa` binary.
    pub bin: PathBuf,
    /// The run's own database on the suite's PostgreSQL.
    pub database_url: String,
    pub kafka_bootstrap: String,
    pub cassandra_nodes: String,
    pub keyspace: String,
    pub prefix: String,
    pub jwt_secret: String,
    /// The run's folder: one log per workload, the servers' script output.
    pub dir: PathBuf,
}

impl Settings {
    pub fn topic(&self) -> String {
        ordexa_topics::orders_topic(&self.prefix)
    }

    pub fn dlq_topic(&self) -> String {
        ordexa_topics::dlq_topic(&self.prefix)
    }

    pub fn projector_group(&self) -> String {
        ordexa_projector::ProjectorConfig::default_group(&self.prefix)
    }

    /// `ordexa <args>` once, to completion (migrations, topics, schema), its output in
    /// `setup.log`.
    pub fn run_once(&self, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
        let log = self.dir.join("setup.log");
        let mut out = OpenOptions::new().create(true).append(true).open(&log)?;
        writeln!(out, "----- {} ordexa {} -----", wall_clock(), args.join(" "))?;
        let mut command = Command::new(&self.bin);
        clear_ordexa_env(&mut command);
        let status = command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()?;
        if !status.success() {
            return Err(format!("ordexa {} failed ({status}):\n{}", args.join(" "), tail(&log, 20)).into());
        }
        Ok(())
    }
}

/// The suite's own variables (the servers' addresses, the chaos state folder) must not leak
/// into a workload: it gets exactly what [`Settings`] says.
fn clear_ordexa_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ORDEXA_") {
            command.env_remove(name);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Api,
    Relay,
    Projector,
}

impl Role {
    fn subcommand(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Relay => "relay",
            Role::Projector => "projector",
        }
    }
}

/// One workload process, restartable: the same name, port and configuration each time.
pub struct Workload {
    pub name: String,
    pub role: Role,
    pub port: u16,
    child: Option<Child>,
    /// SIGSTOPped and not continued yet.
    stopped: bool,
    /// Processes started under this name.
    pub starts: u32,
}

impl Workload {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }
}

/// The workload processes of one run.
pub struct System {
    pub settings: Settings,
    pub workloads: Vec<Workload>,
    http: reqwest::Client,
    clock: Clock,
    /// Processes that ended without the suite killing them: what ended, when, how.
    pub unexpected_exits: Vec<String>,
}

impl System {
    /// Starts api-1, api-2, relay-1, relay-2, projector-1 and projector-2 on six consecutive
    /// ports from `port_base`.
    pub fn start(settings: Settings, port_base: u16, clock: Clock) -> Result<System> {
        let roles = [Role::Api, Role::Api, Role::Relay, Role::Relay, Role::Projector, Role::Projector];
        let mut workloads = Vec::new();
        for (i, role) in roles.into_iter().enumerate() {
            let port = port_base + i as u16;
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| format!("port {port} (--port-base {port_base} + {i}) is not free: {e}"))?;
            let name = format!("{}-{}", role.subcommand(), i % 2 + 1);
            workloads.push(Workload { name, role, port, child: None, stopped: false, starts: 0 });
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
        let mut system = System { settings, workloads, http, clock, unexpected_exits: Vec::new() };
        for i in 0..system.workloads.len() {
            system.spawn(i)?;
        }
        Ok(system)
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The indices of the workloads of `role`.
    pub fn of(&self, role: Role) -> Vec<usize> {
        (0..self.workloads.len()).filter(|i| self.workloads[*i].role == role).collect()
    }

    /// The API base URLs.
    pub fn api_urls(&self) -> Vec<String> {
        self.of(Role::Api).into_iter().map(|i| format!("http://127.0.0.1:{}", self.workloads[i].port)).collect()
    }

    /// Starts workload `i` (again), its output appended to its log.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let s = &self.settings;
        let w = &mut self.workloads[i];
        let log_path = w.log(&s.dir);
        let mut log = OpenOptions::new().create(true).append(true).open(&log_path)?;
        writeln!(log, "----- {} start #{} of {} -----", wall_clock(), w.starts + 1, w.name)?;
        let mut command = Command::new(&s.bin);
        clear_ordexa_env(&mut command);
        command
            .arg(w.role.subcommand())
            .env("ORDEXA_HTTP_ADDR", format!("127.0.0.1:{}", w.port))
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_WORKLOAD_LOG")
                    .unwrap_or_else(|_| "warn,ordexa=info,ordexa_relay=info,ordexa_projector=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        match w.role {
            Role::Api => command
                .env("ORDEXA_DATABASE_URL", &s.database_url)
                .env("ORDEXA_JWT_SECRET", &s.jwt_secret)
                .env("ORDEXA_CASSANDRA_NODES", &s.cassandra_nodes)
                .env("ORDEXA_CASSANDRA_KEYSPACE", &s.keyspace),
            Role::Relay => command
                .env("ORDEXA_DATABASE_URL", &s.database_url)
                .env("ORDEXA_KAFKA_BOOTSTRAP", &s.kafka_bootstrap)
                .env("ORDEXA_TOPIC_PREFIX", &s.prefix),
            Role::Projector => command
                .env("ORDEXA_KAFKA_BOOTSTRAP", &s.kafka_bootstrap)
                .env("ORDEXA_TOPIC_PREFIX", &s.prefix)
                .env("ORDEXA_CASSANDRA_NODES", &s.cassandra_nodes)
                .env("ORDEXA_CASSANDRA_KEYSPACE", &s.keyspace),
        };
        w.child = Some(command.spawn().map_err(|e| format!("cannot start {} ({}): {e}", w.name, s.bin.display()))?);
        w.stopped = false;
        w.starts += 1;
        Ok(())
    }

    /// SIGKILL, as a crash would, and reaped so that its port is free for a restart.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let w = &mut self.workloads[i];
        if let Some(mut child) = w.child.take() {
            child.kill()?;
            child.wait()?;
        }
        w.stopped = false;
        Ok(())
    }

    /// SIGKILL to every workload at once (all signals first, then the reaping).
    pub fn kill_all(&mut self) -> Result<()> {
        let mut children = Vec::new();
        for w in &mut self.workloads {
            if let Some(mut child) = w.child.take() {
                child.kill()?;
                children.push(child);
            }
            w.stopped = false;
        }
        for mut child in children {
            child.wait()?;
        }
        Ok(())
    }

    /// `kill -<signal>` (STOP, CONT) to workload `i`.
    pub fn signal(&mut self, i: usize, signal: &str) -> Result<()> {
        let w = &mut self.workloads[i];
        let pid = w.pid().ok_or_else(|| format!("{} is not running", w.name))?;
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
        if !status.success() {
            return Err(format!("kill -{signal} {pid} ({}) failed: {status}", w.name).into());
        }
        w.stopped = signal == "STOP";
        Ok(())
    }

    /// Notices workloads that ended by themselves: each is recorded as a failure and started
    /// again, as Kubernetes would restart the pod, so that the run can go on and show more.
    pub fn reap(&mut self) -> Result<()> {
        for i in 0..self.workloads.len() {
            let w = &mut self.workloads[i];
            let Some(child) = w.child.as_mut() else { continue };
            if let Some(status) = child.try_wait()? {
                let line = format!(
                    "{} (pid {}) exited by itself with {status} at {}; log: {}",
                    w.name,
                    child.id(),
                    wall_clock(),
                    w.log(&self.settings.dir).display()
                );
                self.clock.say(format!("UNEXPECTED EXIT: {line}; restarting it"));
                self.unexpected_exits.push(line);
                w.child = None;
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Waits `d`, noticing workloads that exit meanwhile.
    pub async fn idle(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            self.reap()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
    }

    /// `GET /healthz` and `GET /readyz` of workload `i`: both 200, or why not.
    pub async fn health_of(&self, i: usize) -> std::result::Result<(), String> {
        let w = &self.workloads[i];
        if w.stopped {
            return Err("stopped (SIGSTOP)".to_owned());
        }
        for path in ["/healthz", "/readyz"] {
            let url = format!("http://127.0.0.1:{}{path}", w.port);
            match self.http.get(&url).send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Err(format!("{path} {status}: {}", body.chars().take(300).collect::<String>()));
                }
                Err(err) => return Err(format!("{path}: {err}")),
            }
        }
        Ok(())
    }

    /// Every workload that is not healthy and ready, with the reason.
    pub async fn unhealthy(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.workloads.len() {
            if let Err(why) = self.health_of(i).await {
                out.push(format!("{}: {why}", self.workloads[i].name));
            }
        }
        out
    }

    /// Waits until every workload answers /healthz and /readyz with 200 by itself; how long
    /// that took, or what was still wrong after `within`.
    pub async fn wait_healthy(&mut self, within: Duration) -> Result<std::result::Result<Duration, Vec<String>>> {
        let start = Instant::now();
        loop {
            self.reap()?;
            let unhealthy = self.unhealthy().await;
            if unhealthy.is_empty() {
                return Ok(Ok(start.elapsed()));
            }
            if start.elapsed() > within {
                return Ok(Err(unhealthy));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The text of workload `i`'s /metrics.
    pub async fn metrics_text(&self, i: usize) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.workloads[i].port);
        self.http.get(url).send().await.ok()?.text().await.ok()
    }

    /// The value of the unlabelled metric `name` on workload `i`, if it answers.
    pub async fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = self.metrics_text(i).await?;
        text.lines().filter_map(|line| line.strip_prefix(name)?.strip_prefix(' ')).find_map(|v| v.trim().parse().ok())
    }

    /// The relay that leads (its `ordexa_relay_leader` is 1 and the other's is not).
    pub async fn relay_leader(&mut self, within: Duration) -> Result<usize> {
        let start = Instant::now();
        loop {
            self.reap()?;
            let mut leading = Vec::new();
            for i in self.of(Role::Relay) {
                if self.metric(i, "ordexa_relay_leader").await == Some(1.0) {
                    leading.push(i);
                }
            }
            if let [one] = leading[..] {
                return Ok(one);
            }
            if start.elapsed() > within {
                return Err(format!("no single relay led within {} (leading: {leading:?})", secs(within)).into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM to every workload, as Kubernetes stops a pod; what did not stop cleanly within
    /// 20 s (then killed).
    pub fn terminate_all(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for w in &mut self.workloads {
            if let Some(pid) = w.pid() {
                if w.stopped {
                    let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
                }
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for w in &mut self.workloads {
            let Some(mut child) = w.child.take() else { continue };
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        unclean.push(format!("{} exited with {status} on SIGTERM", w.name));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Ok(None) | Err(_) => {
                        unclean.push(format!("{} did not stop within 20 s of SIGTERM; killed", w.name));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for System {
    /// A run that ends early (an error, a panic) leaves no workload behind, stopped or not.
    fn drop(&mut self) {
        for w in &mut self.workloads {
            if let Some(mut child) = w.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
