//! The faults, injected one after another while the load runs; each is printed with its time,
//! and after each the suite waits until every workload is healthy and ready again by itself.

use std::time::{Duration, Instant};

use crate::Result;
use crate::system::{Role, System, infra};
use crate::timeline::secs;

/// How long a replaced relay leader may take: the reliability contract's bound.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// kill -9 the relay leader, then start it again.
    RelayKill,
    /// SIGSTOP the relay leader (`--relay-stop`), then SIGCONT: a standby must publish within 30 s.
    RelayStop,
    /// kill -9 a projector, then start it again.
    ProjectorKill,
    /// SIGSTOP a projector (`--projector-stop`), then SIGCONT.
    ProjectorStop,
    /// kill -9 an api, then start it again.
    ApiKill,
    /// kill -9 Kafka, then `infra/kafka.sh start`.
    KafkaKill,
    /// kill -9 Cassandra, then `infra/cassandra.sh start`.
    CassandraKill,
    /// kill -9 PostgreSQL's postmaster, then `infra/postgres.sh start`.
    PostgresKill,
    /// kill -9 all six workloads at once, then start them all.
    KillAll,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::RelayKill,
        Fault::RelayStop,
        Fault::ProjectorKill,
        Fault::ProjectorStop,
        Fault::ApiKill,
        Fault::KafkaKill,
        Fault::CassandraKill,
        Fault::PostgresKill,
        Fault::KillAll,
    ];
}

/// How the faults go.
#[derive(Clone, Debug)]
pub struct FaultOptions {
    pub relay_stop: Duration,
    pub projector_stop: Duration,
    /// How long a killed server stays down before it is started again.
    pub server_down: Duration,
    /// How long the workloads may take to be healthy and ready again after a fault.
    pub recover_within: Duration,
    /// Which of the two replicas of the api and the projector is hit (runs alternate).
    pub replica: usize,
}

/// What one fault did and how the system took it.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    pub fault: Fault,
    /// Seconds into the run, when the fault was injected.
    pub at: Duration,
    pub what: String,
    /// From the fault's end (restart, SIGCONT) until every workload was healthy and ready.
    pub recovered: std::result::Result<Duration, Vec<String>>,
    /// For `RelayStop`: SIGSTOP until the standby published.
    pub failover: Option<Duration>,
    /// How many orders written before the recovery the projection probe waited for, and how
    /// long until all were in `orders_by_id` at their acknowledged version (`None`: some never came).
    pub probed_orders: usize,
    pub projected: Option<Duration>,
    /// Failures found while injecting (a failover over the bound, a woken leader publishing,
    /// acknowledged writes that did not reach the read model).
    pub failures: Vec<String>,
}

pub async fn inject(system: &mut System, fault: Fault, options: &FaultOptions) -> Result<FaultRecord> {
    let clock = system.clock();
    let at = clock.elapsed();
    let mut failover = None;
    let mut failures = Vec::new();
    let what = match fault {
        Fault::RelayKill => {
            let leader = system.relay_leader(Duration::from_secs(60)).await?;
            let what =
                format!("kill -9 relay leader {} (pid {})", system.workloads[leader].name, pid_of(system, leader));
            clock.say(format!("FAULT {what}"));
            system.kill(leader)?;
            system.idle(Duration::from_secs(1)).await?;
            system.spawn(leader)?;
            clock.say(format!("      {} started again", system.workloads[leader].name));
            what
        }
        Fault::RelayStop => {
            let leader = system.relay_leader(Duration::from_secs(60)).await?;
            let standby = system.of(Role::Relay).into_iter().find(|i| *i != leader).ok_or("no standby relay")?;
            let before = system.metric(standby, "ordexa_relay_published_total").await.unwrap_or(0.0);
            let (leader_name, standby_name) =
                (system.workloads[leader].name.clone(), system.workloads[standby].name.clone());
            let what = format!("SIGSTOP relay leader {leader_name} for {}", secs(options.relay_stop));
            clock.say(format!("FAULT {what}; standby {standby_name} had published {before}"));
            system.signal(leader, "STOP")?;
            let stopped = Instant::now();
            while stopped.elapsed() < options.relay_stop {
                if failover.is_none()
                    && system.metric(standby, "ordexa_relay_published_total").await.unwrap_or(0.0) > before
                {
                    let took = stopped.elapsed();
                    clock.say(format!("      failover: {standby_name} published {} after the SIGSTOP", secs(took)));
                    failover = Some(took);
                }
                system.idle(Duration::from_millis(200)).await?;
            }
            system.signal(leader, "CONT")?;
            clock.say(format!("      SIGCONT {leader_name}"));
            match failover {
                Some(took) if took < FAILOVER_BOUND => {}
                Some(took) => failures.push(format!(
                    "failover took {} (bound {}): {standby_name} published only then",
                    secs(took),
                    secs(FAILOVER_BOUND)
                )),
                None => failures.push(format!(
                    "no failover: {standby_name} published nothing in the {} {leader_name} was stopped",
                    secs(options.relay_stop)
                )),
            }
            // The woken leader's producer is fenced: it must publish nothing while the other leads.
            system.idle(Duration::from_secs(1)).await?;
            let woke = system.metric(leader, "ordexa_relay_published_total").await.unwrap_or(0.0);
            system.idle(Duration::from_secs(5)).await?;
            let later = system.metric(leader, "ordexa_relay_published_total").await.unwrap_or(0.0);
            let still_leads = system.metric(standby, "ordexa_relay_leader").await == Some(1.0);
            if later > woke && still_leads {
                failures.push(format!(
                    "the woken leader {leader_name} published {} more while {standby_name} led",
                    later - woke
                ));
            }
            what
        }
        Fault::ProjectorKill => {
            let i = system.of(Role::Projector)[options.replica % 2];
            let what = format!("kill -9 {} (pid {})", system.workloads[i].name, pid_of(system, i));
            clock.say(format!("FAULT {what}"));
            system.kill(i)?;
            system.idle(Duration::from_secs(1)).await?;
            system.spawn(i)?;
            clock.say(format!("      {} started again", system.workloads[i].name));
            what
        }
        Fault::ProjectorStop => {
            let i = system.of(Role::Projector)[options.replica % 2];
            let what = format!("SIGSTOP {} for {}", system.workloads[i].name, secs(options.projector_stop));
            clock.say(format!("FAULT {what}"));
            system.signal(i, "STOP")?;
            system.idle(options.projector_stop).await?;
            system.signal(i, "CONT")?;
            clock.say(format!("      SIGCONT {}", system.workloads[i].name));
            what
        }
        Fault::ApiKill => {
            let i = system.of(Role::Api)[options.replica % 2];
            let what = format!("kill -9 {} (pid {})", system.workloads[i].name, pid_of(system, i));
            clock.say(format!("FAULT {what}"));
            system.kill(i)?;
            system.idle(Duration::from_secs(1)).await?;
            system.spawn(i)?;
            clock.say(format!("      {} started again", system.workloads[i].name));
            what
        }
        Fault::KafkaKill => server_crash(system, "kafka", options).await?,
        Fault::CassandraKill => server_crash(system, "cassandra", options).await?,
        Fault::PostgresKill => server_crash(system, "postgres", options).await?,
        Fault::KillAll => {
            let what = "kill -9 every workload at once".to_owned();
            clock.say(format!("FAULT {what}"));
            system.kill_all()?;
            system.idle(Duration::from_secs(1)).await?;
            for i in 0..system.workloads.len() {
                system.spawn(i)?;
            }
            clock.say("      all six started again");
            what
        }
    };
    let recovered = system.wait_healthy(options.recover_within).await?;
    match &recovered {
        Ok(took) => clock.say(format!("      every workload healthy and ready {} later", secs(*took))),
        Err(unhealthy) => {
            clock.say(format!("      NOT RECOVERED within {}: {}", secs(options.recover_within), unhealthy.join("; ")))
        }
    }
    Ok(FaultRecord { fault, at, what, recovered, failover, probed_orders: 0, projected: None, failures })
}

/// kill -9 a server through its script, wait `server_down`, start it again (the script waits
/// until it answers).
async fn server_crash(system: &mut System, server: &'static str, options: &FaultOptions) -> Result<String> {
    let clock = system.clock();
    let log = system.settings.dir.join("servers.log");
    let what = format!("kill -9 {server}");
    clock.say(format!("FAULT {what}"));
    let killing = log.clone();
    blocking(move || infra(server, &["kill"], &killing)).await?;
    system.idle(options.server_down).await?;
    // Readiness must follow the dependency: what the workloads say while the server is away.
    let unhealthy = system.unhealthy().await;
    if unhealthy.is_empty() {
        clock.say(format!("      while {server} is down every workload says it is ready"));
    } else {
        clock.say(format!("      while {server} is down: {}", unhealthy.join("; ")));
    }
    clock.say(format!("      starting {server} again"));
    let started = Instant::now();
    // A restart can fail while the killed process's remains linger (PostgreSQL's shared memory);
    // a few tries, as an operator (or a supervisor) would.
    let mut tries = 0;
    loop {
        tries += 1;
        let starting = log.clone();
        match blocking(move || infra(server, &["start"], &starting)).await {
            Ok(()) => break,
            Err(err) if tries < 3 => {
                clock.say(format!("      {server} did not start ({err}); trying again"));
                system.idle(Duration::from_secs(5)).await?;
            }
            Err(err) => return Err(err),
        }
    }
    clock.say(format!("      {server} answers again after {}", secs(started.elapsed())));
    Ok(what)
}

fn pid_of(system: &System, i: usize) -> String {
    system.workloads[i].pid().map(|p| p.to_string()).unwrap_or_else(|| "none".to_owned())
}

async fn blocking(f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(f).await?
}
