//! The projection probe after each fault: every write acknowledged before the system recovered
//! from it must reach `orders_by_id` within a bound, checked before the next fault. A later
//! fault must not hide an earlier one's damage — the last one restarts every projector, which
//! would heal a projector that silently stopped consuming when Kafka came back.
//!
//! Only the writes acknowledged since the previous probe are read (one `orders_by_id` lookup
//! each); the comparison of all three tables with the write model comes after the load.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordexa_domain::OrderId;
use ordexa_readmodel::ReadModel;

use crate::Result;
use crate::faults::FaultRecord;
use crate::system::System;
use crate::timeline::secs;

/// Read-model lookups in flight at once.
const CONCURRENCY: usize = 32;

pub struct Probe {
    model: Option<ReadModel>,
    /// Per order, the version already seen in `orders_by_id` (or reported missing).
    seen: HashMap<String, i64>,
    /// Per order still missing, the version `orders_by_id` had at the last look (0: no row).
    projected: HashMap<String, i64>,
}

/// What one probe found.
pub struct ProbeOutcome {
    /// Orders with a newer acknowledged version than the previous probe saw: the ones it waited for.
    pub orders: usize,
    /// How long until all of them were in `orders_by_id`, or `None` when some never came.
    pub took: Option<Duration>,
    /// A failure with what a person needs to debug it.
    pub failure: Option<String>,
}

impl Probe {
    pub fn new() -> Self {
        Probe { model: None, seen: HashMap::new(), projected: HashMap::new() }
    }

    /// Waits until every version in `acked` newer than what an earlier probe saw is in
    /// `orders_by_id`, for at most `within`.
    pub async fn check(
        &mut self,
        system: &System,
        acked: HashMap<String, i64>,
        within: Duration,
        faults: &[FaultRecord],
    ) -> Result<ProbeOutcome> {
        let clock = system.clock();
        let mut pending: Vec<(String, i64)> =
            acked.into_iter().filter(|(id, v)| self.seen.get(id).is_none_or(|seen| seen < v)).collect();
        let orders = pending.len();
        let started = Instant::now();
        loop {
            match self.missing(system, &pending).await {
                Ok(missing) => pending = missing,
                Err(err) => clock.say(format!("      probe: the read model failed ({err}); again")),
            }
            if pending.is_empty() {
                return Ok(ProbeOutcome { orders, took: Some(started.elapsed()), failure: None });
            }
            if started.elapsed() > within {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // Reported once: a later probe does not wait for these again.
        for (id, version) in &pending {
            self.seen.insert(id.clone(), *version);
        }
        pending.sort();
        let messages = crate::kit(ordexa_testkit::read_topic(&system.settings.topic()).await)?;
        let missing: Vec<(String, String)> = pending
            .iter()
            .map(|(id, v)| {
                let have = match self.projected.get(id).copied().unwrap_or(0) {
                    0 => "no row".to_owned(),
                    have => format!("v{have}"),
                };
                (id.clone(), format!("order {id}: v{v} acknowledged, orders_by_id has {have}"))
            })
            .collect();
        let report = crate::checks::explain(system, &missing, &messages, faults).await;
        let after = faults.last().map(|f| f.what.clone()).unwrap_or_default();
        Ok(ProbeOutcome {
            orders,
            took: None,
            failure: Some(format!(
                "{} of the {orders} orders written before the recovery from \"{after}\" were not in orders_by_id at their acknowledged version {} later:\n{report}",
                pending.len(),
                secs(within)
            )),
        })
    }

    /// The writes of `pending` not in `orders_by_id` yet; records the ones that are.
    async fn missing(&mut self, system: &System, pending: &[(String, i64)]) -> Result<Vec<(String, i64)>> {
        if self.model.is_none() {
            let nodes: Vec<String> = system.settings.cassandra_nodes.split(',').map(str::to_owned).collect();
            let session = ordexa_readmodel::connect(&nodes).await?;
            self.model = Some(ReadModel::new(session, &system.settings.keyspace).await?);
        }
        let Some(model) = self.model.as_ref() else { return Ok(pending.to_vec()) };
        let mut missing = Vec::new();
        let mut found = Vec::new();
        let mut queued = pending.iter();
        let mut in_flight = FuturesUnordered::new();
        let lookup = |(id, version): &(String, i64)| {
            let (id, version) = (id.clone(), *version);
            async move {
                let order = OrderId::from_str(&id).map_err(|e| format!("order id {id}: {e}"))?;
                let projected = model.get(order).await?.map(|o| o.version).unwrap_or(0);
                Ok::<_, crate::Error>((id, version, projected))
            }
        };
        for write in queued.by_ref().take(CONCURRENCY) {
            in_flight.push(lookup(write));
        }
        let mut failed = None;
        while let Some(result) = in_flight.next().await {
            match result {
                Ok((id, version, projected)) if projected >= version => found.push((id, projected)),
                Ok((id, version, projected)) => {
                    self.projected.insert(id.clone(), projected);
                    missing.push((id, version));
                }
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
            if let Some(write) = queued.next() {
                in_flight.push(lookup(write));
            }
        }
        drop(in_flight);
        if let Some(err) = failed {
            self.model = None; // connect again next time: Cassandra may have restarted
            return Err(err);
        }
        for (id, projected) in found {
            self.seen.insert(id, projected);
        }
        Ok(missing)
    }
}
