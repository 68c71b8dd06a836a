//! The binaries under test as black boxes: started with their environment variables, reached on
//! their HTTP port (/readyz, /metrics), stopped with SIGTERM as a pod is.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running process of the system under test (or of Debezium); killed if dropped unstopped.
pub struct Workload {
    pub name: String,
    pub pid: u32,
    /// `host:port` of its HTTP server, when it has one.
    pub addr: Option<String>,
    child: Option<Child>,
    pub started_ms: f64,
}

/// A free port on loopback (released for the workload to bind).
pub fn free_addr() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

impl Workload {
    /// Starts `program args` with `env` added, its output to `log`.
    pub fn spawn(name: &str, program: &str, args: &[&str], env: &[(&str, String)], log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let addr = env.iter().find(|(k, _)| *k == "ORDEXA_HTTP_ADDR").map(|(_, v)| v.clone());
        let started_ms = crate::proc::now_ms();
        let child = cmd.spawn().with_context(|| format!("starting {name} ({program})"))?;
        eprintln!("[bench] started {name} (pid {}), log {}", child.id(), log.display());
        Ok(Self { name: name.to_owned(), pid: child.id(), addr, child: Some(child), started_ms })
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.as_mut().map(Child::try_wait).transpose()?.flatten())
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.exited()? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }

    /// Waits until `GET /readyz` answers 200.
    pub async fn ready(&mut self, http: &reqwest::Client, within: Duration) -> Result<()> {
        let url = format!("http://{}/readyz", self.addr.as_deref().context("no HTTP address")?);
        let deadline = Instant::now() + within;
        loop {
            self.alive()?;
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of every sample of metric `name` on its `/metrics`.
    pub async fn metric(&mut self, http: &reqwest::Client, name: &str) -> Result<f64> {
        self.alive()?;
        let url = format!("http://{}/metrics", self.addr.as_deref().context("no HTTP address")?);
        let text = http.get(&url).send().await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGTERM, then waits (SIGKILL after 30 s); fails unless it exited cleanly.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if child.try_wait()?.is_none() {
            Command::new("kill").args(["-TERM", &self.pid.to_string()]).status()?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                // A JVM answers SIGTERM with 143 after its shutdown hooks ran: a clean stop too.
                if status.success() || status.code() == Some(143) {
                    return Ok(());
                }
                bail!("{} exited with {status}", self.name);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("{} did not stop within 30 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `ordexa` with `args` and `env` to its end; fails with its output if it fails.
pub fn run_ordexa(ordexa: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut cmd = Command::new(ordexa);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().with_context(|| format!("running {ordexa} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ordexa {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
