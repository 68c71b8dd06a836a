//! `ordexa reconcile` (talks to PostgreSQL and Cassandra): compares the write model with every
//! read-model table, order by order, and reports — or, asked to, repairs — each order whose
//! read-model rows differ from its current version.
//!
//! An order agrees when `orders_by_id` holds its version and status, `orders_by_user` its
//! version, and `orders_by_status` exactly one row for it, under its status, at its version.
//! Orders still being projected differ for a moment: differences are checked again after a
//! settle time and reported only if they last. A repair writes the order's current snapshot as
//! the projector would (the same write timestamps, so a repair never overwrites a newer
//! projection) and deletes rows left under other statuses.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordexa_domain::{Order, OrderEvent, OrderId, OrderStatus};
use ordexa_readmodel::{ReadModel, ReadModelError, bucket_of, write_timestamp};
use ordexa_store::{Store, StoreError};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

/// Read-model lookups in flight at once.
const CONCURRENCY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the write model failed: {0}")]
    Store(#[from] StoreError),
    #[error("the read model failed: {0}")]
    ReadModel(#[from] ReadModelError),
}

/// What the read model holds for one order, where it differs from the write model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub order: OrderId,
    pub version: i64,
    pub status: OrderStatus,
    /// `orders_by_id`: version and status, if any row.
    pub by_id: Option<(i64, String)>,
    /// `orders_by_user`: version, if any row.
    pub by_user: Option<i64>,
    /// `orders_by_status`: every row of the order, as status and version.
    pub by_status: Vec<(String, i64)>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "order {} is v{} {} in the write model; orders_by_id {:?}, orders_by_user {:?}, orders_by_status {:?}",
            self.order, self.version, self.status, self.by_id, self.by_user, self.by_status
        )
    }
}

/// What a run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Orders compared.
    pub checked: u64,
    /// Orders that still differed after the settle time (before any repair).
    pub differences: Vec<Difference>,
    /// Orders repaired (and checked again to agree).
    pub repaired: u64,
}

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Rewrite the differing orders.
    pub repair: bool,
    /// How long a difference may last before it counts (the projection of recent changes).
    pub settle: Duration,
    /// Write-model orders read per page.
    pub page: i64,
}

/// The statements the comparison and the repair use, prepared once.
struct Statements {
    by_id: PreparedStatement,
    by_user: PreparedStatement,
    by_status: PreparedStatement,
    delete_by_status: PreparedStatement,
}

impl Statements {
    async fn prepare(model: &ReadModel) -> Result<Self, ReadModelError> {
        let ks = model.keyspace();
        let session = model.session();
        Ok(Statements {
            by_id: session.prepare(format!("SELECT version, status FROM {ks}.orders_by_id WHERE order_id = ?")).await?,
            by_user: session
                .prepare(format!(
                    "SELECT version FROM {ks}.orders_by_user WHERE user_id = ? AND created_at = ? AND order_id = ?"
                ))
                .await?,
            by_status: session
                .prepare(format!(
                    "SELECT status, version FROM {ks}.orders_by_status \
                     WHERE status IN ? AND bucket = ? AND created_at = ? AND order_id = ?"
                ))
                .await?,
            delete_by_status: session
                .prepare(format!(
                    "DELETE FROM {ks}.orders_by_status USING TIMESTAMP ? \
                     WHERE status = ? AND bucket = ? AND created_at = ? AND order_id = ?"
                ))
                .await?,
        })
    }
}

/// Compares every order of the write model with the read model; see the module documentation.
pub async fn reconcile(store: &Store, model: &ReadModel, options: Options) -> Result<Report, ReconcileError> {
    let statements = Statements::prepare(model).await?;
    let mut report = Report::default();
    let mut suspects: Vec<OrderId> = Vec::new();
    let mut after = None;
    loop {
        let page = store.orders_after(after, options.page.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        report.checked += page.len() as u64;
        for difference in differences(model, &statements, &page).await? {
            suspects.push(difference.order);
        }
    }
    if suspects.is_empty() {
        return Ok(report);
    }
    tokio::time::sleep(options.settle).await;
    let mut again = Vec::with_capacity(suspects.len());
    for chunk in suspects.chunks(options.page.max(1) as usize) {
        let staff = ordexa_store::Actor { user_id: "reconcile".into(), is_admin: true };
        let mut orders = Vec::with_capacity(chunk.len());
        for id in chunk {
            orders.push(store.get_order(*id, &staff).await?);
        }
        again.extend(differences(model, &statements, &orders).await?.into_iter().map(|d| (d, orders.clone())));
    }
    for (difference, orders) in again {
        if options.repair
            && let Some(order) = orders.iter().find(|o| o.id == difference.order)
        {
            repair(model, &statements, order, &difference).await?;
            if differs(model, &statements, order).await?.is_none() {
                report.repaired += 1;
            }
        }
        report.differences.push(difference);
    }
    Ok(report)
}

/// The orders of `orders` whose read-model rows differ.
async fn differences(
    model: &ReadModel,
    statements: &Statements,
    orders: &[Order],
) -> Result<Vec<Difference>, ReadModelError> {
    let mut found = Vec::new();
    let mut queued = orders.iter();
    let mut in_flight = FuturesUnordered::new();
    for order in queued.by_ref().take(CONCURRENCY) {
        in_flight.push(differs(model, statements, order));
    }
    while let Some(result) = in_flight.next().await {
        if let Some(difference) = result? {
            found.push(difference);
        }
        if let Some(order) = queued.next() {
            in_flight.push(differs(model, statements, order));
        }
    }
    Ok(found)
}

/// How the read model differs from `order`, if it does.
async fn differs(
    model: &ReadModel,
    statements: &Statements,
    order: &Order,
) -> Result<Option<Difference>, ReadModelError> {
    let session = model.session();
    let id = order.id.0;
    let created = CqlTimestamp(order.created_at.timestamp_millis());
    let bucket = CqlTimestamp(bucket_of(order.created_at));
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    let (by_id, by_user, by_status) = futures::try_join!(
        session.execute_unpaged(&statements.by_id, (id,)),
        session.execute_unpaged(&statements.by_user, (order.user_id.as_str(), created, id)),
        session.execute_unpaged(&statements.by_status, (&statuses, bucket, created, id)),
    )?;
    let by_id = by_id.into_rows_result()?.maybe_first_row::<(Option<i64>, Option<String>)>()?;
    let by_id = by_id.and_then(|(version, status)| Some((version?, status?)));
    let by_user = by_user.into_rows_result()?.maybe_first_row::<(Option<i64>,)>()?.and_then(|(v,)| v);
    let mut rows = Vec::new();
    for row in by_status.into_rows_result()?.rows::<(String, Option<i64>)>()? {
        let (status, version) = row?;
        rows.push((status, version.unwrap_or(0)));
    }
    let agrees = by_id.as_ref() == Some(&(order.version, order.status.as_str().to_owned()))
        && by_user == Some(order.version)
        && rows == [(order.status.as_str().to_owned(), order.version)];
    Ok((!agrees).then_some(Difference {
        order: order.id,
        version: order.version,
        status: order.status,
        by_id,
        by_user,
        by_status: rows,
    }))
}

/// Writes `order`'s current snapshot as the projector would, and deletes its rows under other
/// statuses at the same write timestamp.
async fn repair(
    model: &ReadModel,
    statements: &Statements,
    order: &Order,
    difference: &Difference,
) -> Result<(), ReadModelError> {
    let event = if order.version == 1 { OrderEvent::created(order) } else { OrderEvent::updated(order) };
    model.apply(&event).await?;
    let ts = write_timestamp(order);
    let created = CqlTimestamp(order.created_at.timestamp_millis());
    let bucket = CqlTimestamp(bucket_of(order.created_at));
    for (status, _) in difference.by_status.iter().filter(|(s, _)| s != order.status.as_str()) {
        let values = (ts, status.as_str(), bucket, created, order.id.0);
        model.session().execute_unpaged(&statements.delete_by_status, values).await?;
    }
    tracing::info!(order = %order.id, version = order.version, "read model repaired");
    Ok(())
}
