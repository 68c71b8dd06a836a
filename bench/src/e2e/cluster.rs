//! The servers' side of the end-to-end benchmark: the run's own Cassandra keyspaces (created
//! with the read model's schema, dropped at the end) and a consumer group's committed offsets
//! (its lag).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ordexa_readmodel::{ReadModel, Replication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scylla::client::session::Session;

/// Every keyspace of a run starts with this.
pub const KEYSPACE_PREFIX: &str = "bench_e2e_";

/// Refuses a keyspace prefix that is not a benchmark run's own.
pub fn check_keyspace_prefix(prefix: &str) -> Result<()> {
    let rest = prefix.strip_prefix(KEYSPACE_PREFIX).unwrap_or("");
    if rest.len() < 8 || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{prefix:?} is not a benchmark run's keyspace prefix ({KEYSPACE_PREFIX}<stamp>)");
    }
    Ok(())
}

pub async fn connect(nodes: &[String]) -> Result<Session> {
    ordexa_readmodel::connect(nodes).await.context("connecting to Cassandra")
}

/// A fresh keyspace `name` with the read model's current schema (replication 1), as `ordexa
/// cassandra-schema` makes it, and the read model on it.
pub async fn fresh_keyspace(nodes: &[String], name: &str) -> Result<ReadModel> {
    let session = connect(nodes).await?;
    drop_keyspace(&session, name).await?;
    ordexa_readmodel::apply_schema(&session, name, &Replication::Simple(1))
        .await
        .with_context(|| format!("creating keyspace {name}"))?;
    ReadModel::new(session, name).await.with_context(|| format!("preparing the read model on {name}"))
}

pub async fn drop_keyspace(session: &Session, name: &str) -> Result<()> {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), &[])
        .await
        .with_context(|| format!("dropping keyspace {name}"))?;
    session.await_schema_agreement().await.context("schema agreement after a DROP KEYSPACE")?;
    Ok(())
}

/// Drops every keyspace whose name starts with `prefix` (a run's own). Returns their names.
pub async fn drop_keyspaces(nodes: &[String], prefix: &str) -> Result<Vec<String>> {
    check_keyspace_prefix(prefix)?;
    let session = connect(nodes).await?;
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[])
        .await?
        .into_rows_result()
        .context("listing keyspaces")?;
    let mut names = Vec::new();
    for row in rows.rows::<(String,)>().context("listing keyspaces")? {
        let (name,) = row.context("listing keyspaces")?;
        if name.starts_with(prefix) {
            names.push(name);
        }
    }
    for name in &names {
        drop_keyspace(&session, name).await?;
    }
    Ok(names)
}

/// Rows in a keyspace's `orders_by_id`, counted through a paged scan of the keys (a `count(*)`
/// over a large table can exhaust a small node's heap; only for checks at the end of a phase).
pub async fn count_orders(session: &Session, keyspace: &str) -> Result<i64> {
    let mut statement = scylla::statement::Statement::new(format!("SELECT order_id FROM {keyspace}.orders_by_id"));
    statement.set_page_size(2000);
    statement.set_request_timeout(Some(Duration::from_secs(60)));
    let mut rows = session
        .query_iter(statement, &[])
        .await
        .context("counting orders")?
        .rows_stream::<(uuid::Uuid,)>()
        .context("counting orders")?;
    let mut count = 0i64;
    while let Some(row) = rows.next().await {
        row.context("counting orders")?;
        count += 1;
    }
    Ok(count)
}

/// The offsets `group` has committed on each partition of `topic` (-1 where none yet).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("a consumer to read committed offsets")?;
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(topic, p);
    }
    let offsets =
        consumer.committed_offsets(list, Duration::from_secs(10)).context("reading the group's committed offsets")?;
    Ok(offsets
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), offset)
        })
        .collect())
}

/// How far `group` is behind the high watermarks of `topic`, summed over its partitions.
pub fn lag(bootstrap: &str, group: &str, topic: &str) -> Result<i64> {
    let high = crate::relay::kafka::high_watermarks(bootstrap, topic)?;
    let partitions: Vec<i32> = high.keys().copied().collect();
    let committed = committed(bootstrap, group, topic, &partitions)?;
    Ok(high.iter().map(|(p, h)| h - committed.get(p).copied().unwrap_or(-1).max(0)).sum())
}

/// Waits (polling every `every`) until `group` has no lag on `topic`; returns the seconds
/// waited, or fails after `timeout`.
pub async fn wait_no_lag(bootstrap: &str, group: &str, topic: &str, every: Duration, timeout: Duration) -> Result<f64> {
    let started = tokio::time::Instant::now();
    loop {
        let (b, g, t) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
        let lag = tokio::task::spawn_blocking(move || lag(&b, &g, &t)).await.context("the lag reader")??;
        if lag == 0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= timeout {
            bail!("the group {group} still lags {lag} messages behind {topic} after {timeout:?}");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_runs_own_keyspace_prefix_is_accepted() {
        assert!(check_keyspace_prefix("bench_e2e_20261126t101010z").is_ok());
        for bad in ["ordexa", "", "bench_e2e_", "bench_e2e_x", "bench_e2e_2026112610; DROP"] {
            assert!(check_keyspace_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
