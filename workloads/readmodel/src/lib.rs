//! Ordexa's read model in Cassandra: the schema ([`schema`]), the projector's idempotent writes
//! ([`ReadModel::apply`]) and the API's queries ([`ReadModel::get`], [`ReadModel::list_by_user`],
//! [`ReadModel::list_by_status`]).
//!
//! Idempotent and order-insensitive without lightweight transactions: every write of an event
//! carries the write timestamp `created_at (µs) + version`. Within one order that timestamp
//! grows with the version, so Cassandra's last-write-wins keeps the newest version whatever
//! order events arrive in, and re-applying an event rewrites identical cells. Because the
//! timestamp depends only on the event, replaying a topic into empty tables yields identical
//! tables, write times included.
//!
//! `orders_by_status` is partitioned by status and the hour the order was created, so no
//! partition grows without bound. When an order enters a status, its row under every status it
//! could have come from is deleted at the same timestamp; an older event arriving late writes
//! below that tombstone and stays invisible.

pub mod schema;

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use ordexa_domain::{Order, OrderEvent, OrderId, OrderStatus, Transition};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use schema::{Replication, SchemaOutcome, apply_schema, check_schema};

/// The only partition of `order_buckets`: it holds one row per hour with orders, a few
/// thousand a year.
const BUCKET_SHARD: i32 = 0;
/// One `orders_by_status` partition holds the orders created in one hour.
const BUCKET_MILLIS: i64 = 3_600_000;
/// How many hour buckets one status listing request looks into before it answers with what
/// it found and a token to continue.
pub const MAX_BUCKETS_PER_PAGE: usize = 168;

#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("cannot connect to Cassandra at {nodes}: {source}")]
    Connect { nodes: String, source: Box<scylla::errors::NewSessionError> },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    SchemaMissing(String),
    #[error("cannot prepare a read-model statement: {0}")]
    Prepare(#[from] scylla::errors::PrepareError),
    #[error("Cassandra request failed: {0}")]
    Execute(Box<scylla::errors::ExecutionError>),
    #[error("Cassandra schema agreement failed: {0}")]
    SchemaAgreement(Box<scylla::errors::SchemaAgreementError>),
    #[error("unexpected Cassandra result: {0}")]
    Result(String),
    #[error("read model row of order {order_id} is corrupt: {reason}")]
    CorruptRow { order_id: Uuid, reason: String },
}

impl From<scylla::errors::ExecutionError> for ReadModelError {
    fn from(e: scylla::errors::ExecutionError) -> Self {
        ReadModelError::Execute(Box::new(e))
    }
}
impl From<scylla::errors::SchemaAgreementError> for ReadModelError {
    fn from(e: scylla::errors::SchemaAgreementError) -> Self {
        ReadModelError::SchemaAgreement(Box::new(e))
    }
}
impl From<scylla::errors::IntoRowsResultError> for ReadModelError {
    fn from(e: scylla::errors::IntoRowsResultError) -> Self {
        ReadModelError::Result(e.to_string())
    }
}
impl From<scylla::errors::RowsError> for ReadModelError {
    fn from(e: scylla::errors::RowsError) -> Self {
        ReadModelError::Result(e.to_string())
    }
}
impl From<scylla::errors::DeserializationError> for ReadModelError {
    fn from(e: scylla::errors::DeserializationError) -> Self {
        ReadModelError::Result(e.to_string())
    }
}
impl From<scylla::errors::MaybeFirstRowError> for ReadModelError {
    fn from(e: scylla::errors::MaybeFirstRowError) -> Self {
        ReadModelError::Result(e.to_string())
    }
}

impl ReadModelError {
    /// Whether Cassandra could not be reached or did not answer in time (a node down, a
    /// connection broken, a timeout, too few replicas): an outage to wait out, not a defect.
    pub fn is_unavailable(&self) -> bool {
        use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
        match self {
            ReadModelError::Connect { .. } | ReadModelError::SchemaAgreement(_) => true,
            ReadModelError::Execute(err) => match err.as_ref() {
                ExecutionError::ConnectionPoolError(_)
                | ExecutionError::RequestTimeout(_)
                | ExecutionError::EmptyPlan
                | ExecutionError::UseKeyspaceError(_)
                | ExecutionError::SchemaAgreementError(_)
                | ExecutionError::MetadataError(_) => true,
                ExecutionError::LastAttemptError(attempt) => match attempt {
                    RequestAttemptError::BrokenConnectionError(_) | RequestAttemptError::UnableToAllocStreamId => true,
                    RequestAttemptError::DbError(db, _) => matches!(
                        db,
                        DbError::Unavailable { .. }
                            | DbError::Overloaded
                            | DbError::IsBootstrapping
                            | DbError::ReadTimeout { .. }
                            | DbError::WriteTimeout { .. }
                            | DbError::ReadFailure { .. }
                            | DbError::WriteFailure { .. }
                            | DbError::RateLimitReached { .. }
                    ),
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        }
    }
}

/// The driver's request timeout of sessions opened with [`connect`]: its own default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a session to `nodes` (`host:port`, …).
pub async fn connect(nodes: &[String]) -> Result<Session, ReadModelError> {
    connect_with_request_timeout(nodes, DEFAULT_REQUEST_TIMEOUT).await
}

/// Opens a session to `nodes` whose requests fail with a timeout after `request_timeout`
/// (retries included), so a caller waiting on a node that stopped answering gives up in
/// bounded time.
pub async fn connect_with_request_timeout(
    nodes: &[String],
    request_timeout: Duration,
) -> Result<Session, ReadModelError> {
    if nodes.is_empty() {
        return Err(ReadModelError::Config("no Cassandra nodes given".to_owned()));
    }
    let profile = ExecutionProfile::builder().request_timeout(Some(request_timeout)).build();
    SessionBuilder::new()
        .known_nodes(nodes)
        .connection_timeout(Duration::from_secs(5))
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|source| ReadModelError::Connect { nodes: nodes.join(","), source: Box::new(source) })
}

/// Where the next page of a user's orders starts: after this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCursor {
    pub created_ms: i64,
    pub order_id: Uuid,
}

/// Where the next page of a status listing starts: in this hour bucket, after this order (or
/// at the bucket's newest order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCursor {
    pub bucket_ms: i64,
    pub after: Option<UserCursor>,
}

/// One page of orders, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<C> {
    pub orders: Vec<Order>,
    pub next: Option<C>,
}

/// The prepared statements of the projector and the API.
#[derive(Debug)]
struct Statements {
    upsert_by_id: PreparedStatement,
    upsert_by_user: PreparedStatement,
    upsert_by_status: PreparedStatement,
    delete_by_status: PreparedStatement,
    insert_bucket: PreparedStatement,
    get_by_id: PreparedStatement,
    list_user_first: PreparedStatement,
    list_user_after: PreparedStatement,
    list_status_first: PreparedStatement,
    list_status_after: PreparedStatement,
    buckets_upto: PreparedStatement,
}

/// The read model of one keyspace. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct ReadModel {
    session: Session,
    keyspace: String,
    statements: Statements,
    /// Hour buckets this process already recorded, so the bucket row is written once per hour
    /// and process rather than once per event.
    known_buckets: Mutex<Vec<i64>>,
}

impl ReadModel {
    /// Prepares the statements on a session whose keyspace already has the current schema.
    pub async fn new(session: Session, keyspace: &str) -> Result<Self, ReadModelError> {
        schema::check_schema(&session, keyspace).await?;
        let ks = keyspace;
        let prepare = |cql: String| {
            let session = &session;
            async move { session.prepare(cql).await }
        };
        let statements = Statements {
            upsert_by_id: prepare(format!(
                "INSERT INTO {ks}.orders_by_id (order_id, user_id, status, version, created_at, updated_at, body)
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            upsert_by_user: prepare(format!(
                "INSERT INTO {ks}.orders_by_user (user_id, created_at, order_id, status, version, body)
                 VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            upsert_by_status: prepare(format!(
                "INSERT INTO {ks}.orders_by_status (status, bucket, created_at, order_id, user_id, version, body)
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            delete_by_status: prepare(format!(
                "DELETE FROM {ks}.orders_by_status USING TIMESTAMP ?
                 WHERE status = ? AND bucket = ? AND created_at = ? AND order_id = ?"
            ))
            .await?,
            insert_bucket: prepare(format!("INSERT INTO {ks}.order_buckets (shard, bucket) VALUES (?, ?)")).await?,
            get_by_id: prepare(format!("SELECT body FROM {ks}.orders_by_id WHERE order_id = ?")).await?,
            list_user_first: prepare(format!(
                "SELECT order_id, body FROM {ks}.orders_by_user WHERE user_id = ? LIMIT ?"
            ))
            .await?,
            list_user_after: prepare(format!(
                "SELECT order_id, body FROM {ks}.orders_by_user
                 WHERE user_id = ? AND (created_at, order_id) < (?, ?) LIMIT ?"
            ))
            .await?,
            list_status_first: prepare(format!(
                "SELECT order_id, body FROM {ks}.orders_by_status WHERE status = ? AND bucket = ? LIMIT ?"
            ))
            .await?,
            list_status_after: prepare(format!(
                "SELECT order_id, body FROM {ks}.orders_by_status
                 WHERE status = ? AND bucket = ? AND (created_at, order_id) < (?, ?) LIMIT ?"
            ))
            .await?,
            buckets_upto: prepare(format!(
                "SELECT bucket FROM {ks}.order_buckets WHERE shard = ? AND bucket <= ? LIMIT ?"
            ))
            .await?,
        };
        Ok(ReadModel { session, keyspace: keyspace.to_owned(), statements, known_buckets: Mutex::new(Vec::new()) })
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A cheap request proving Cassandra answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        self.session.query_unpaged("SELECT release_version FROM system.local", &[]).await?;
        Ok(())
    }

    /// Writes one event's order snapshot into every table. Idempotent and order-insensitive
    /// (see the crate documentation); the statements run concurrently.
    pub async fn apply(&self, event: &OrderEvent) -> Result<(), ReadModelError> {
        let order = &event.order;
        let s = &self.statements;
        let body = serde_json::to_string(order)
            .map_err(|e| ReadModelError::CorruptRow { order_id: order.id.0, reason: e.to_string() })?;
        let ts = write_timestamp(order);
        let id = order.id.0;
        let created = CqlTimestamp(order.created_at.timestamp_millis());
        let updated = CqlTimestamp(order.updated_at.timestamp_millis());
        let bucket = CqlTimestamp(bucket_of(order.created_at));
        let status = order.status.as_str();
        let user = order.user_id.as_str();
        let version = order.version;

        let by_id =
            self.session.execute_unpaged(&s.upsert_by_id, (id, user, status, version, created, updated, &body, ts));
        let by_user = self.session.execute_unpaged(&s.upsert_by_user, (user, created, id, status, version, &body, ts));
        let by_status =
            self.session.execute_unpaged(&s.upsert_by_status, (status, bucket, created, id, user, version, &body, ts));
        let leave_previous = try_join_all(predecessors(order.status).into_iter().map(|previous| {
            self.session.execute_unpaged(&s.delete_by_status, (ts, previous.as_str(), bucket, created, id))
        }));
        futures::try_join!(by_id, by_user, by_status, leave_previous)?;
        self.record_bucket(bucket.0).await
    }

    async fn record_bucket(&self, bucket_ms: i64) -> Result<(), ReadModelError> {
        let known = self.known_buckets.lock().map(|b| b.contains(&bucket_ms)).unwrap_or(false);
        if known {
            return Ok(());
        }
        self.session.execute_unpaged(&self.statements.insert_bucket, (BUCKET_SHARD, CqlTimestamp(bucket_ms))).await?;
        if let Ok(mut buckets) = self.known_buckets.lock() {
            // Events arrive roughly in time order: keep the newest few hours.
            buckets.push(bucket_ms);
            if buckets.len() > 64 {
                buckets.remove(0);
            }
        }
        Ok(())
    }

    /// The projected order, if any version of it has been projected.
    pub async fn get(&self, id: OrderId) -> Result<Option<Order>, ReadModelError> {
        let rows = self.session.execute_unpaged(&self.statements.get_by_id, (id.0,)).await?.into_rows_result()?;
        match rows.maybe_first_row::<(Option<String>,)>()? {
            Some((Some(body),)) => Ok(Some(decode_body(id.0, &body)?)),
            _ => Ok(None),
        }
    }

    /// A user's orders, newest first.
    pub async fn list_by_user(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<UserCursor>,
    ) -> Result<Page<UserCursor>, ReadModelError> {
        let fetch = limit_plus_one(limit);
        let result = match after {
            None => self.session.execute_unpaged(&self.statements.list_user_first, (user_id, fetch)).await?,
            Some(c) => {
                let values = (user_id, CqlTimestamp(c.created_ms), c.order_id, fetch);
                self.session.execute_unpaged(&self.statements.list_user_after, values).await?
            }
        };
        let mut orders = decode_rows(result)?;
        let next = if orders.len() > limit as usize {
            orders.truncate(limit as usize);
            orders.last().map(cursor_of)
        } else {
            None
        };
        Ok(Page { orders, next })
    }

    /// Every order in `status`, newest first, walking hour buckets backwards from `after` (or
    /// from now). A page may hold fewer than `limit` orders when [`MAX_BUCKETS_PER_PAGE`]
    /// buckets were searched; its token continues the search.
    pub async fn list_by_status(
        &self,
        status: OrderStatus,
        limit: u32,
        after: Option<StatusCursor>,
    ) -> Result<Page<StatusCursor>, ReadModelError> {
        let start = after.map_or_else(|| bucket_of(Utc::now()) + BUCKET_MILLIS, |c| c.bucket_ms);
        let fetch_buckets = i32::try_from(MAX_BUCKETS_PER_PAGE + 1).unwrap_or(i32::MAX);
        let rows = self
            .session
            .execute_unpaged(&self.statements.buckets_upto, (BUCKET_SHARD, CqlTimestamp(start), fetch_buckets))
            .await?
            .into_rows_result()?;
        let mut buckets = Vec::new();
        for row in rows.rows::<(CqlTimestamp,)>()? {
            buckets.push(row?.0.0);
        }
        let mut orders: Vec<Order> = Vec::new();
        for (i, &bucket) in buckets.iter().enumerate() {
            if i == MAX_BUCKETS_PER_PAGE {
                return Ok(Page { orders, next: Some(StatusCursor { bucket_ms: bucket, after: None }) });
            }
            let want = limit as usize - orders.len();
            let fetch = limit_plus_one(u32::try_from(want).unwrap_or(u32::MAX));
            let position = after.filter(|c| c.bucket_ms == bucket).and_then(|c| c.after);
            let result = match position {
                None => {
                    let values = (status.as_str(), CqlTimestamp(bucket), fetch);
                    self.session.execute_unpaged(&self.statements.list_status_first, values).await?
                }
                Some(c) => {
                    let values = (status.as_str(), CqlTimestamp(bucket), CqlTimestamp(c.created_ms), c.order_id, fetch);
                    self.session.execute_unpaged(&self.statements.list_status_after, values).await?
                }
            };
            let mut found = decode_rows(result)?;
            if found.len() > want {
                found.truncate(want);
                orders.extend(found);
                let next = orders.last().map(|o| StatusCursor { bucket_ms: bucket, after: Some(cursor_of(o)) });
                return Ok(Page { orders, next });
            }
            orders.extend(found);
            if orders.len() == limit as usize {
                // Full exactly at a bucket's end: continue with the next bucket, if any.
                let next = buckets.get(i + 1).map(|&b| StatusCursor { bucket_ms: b, after: None });
                return Ok(Page { orders, next });
            }
        }
        Ok(Page { orders, next: None })
    }
}

/// The write timestamp of every cell an event writes: grows with the version within one order.
pub fn write_timestamp(order: &Order) -> i64 {
    order.created_at.timestamp_micros().saturating_add(order.version)
}

/// The hour bucket (epoch milliseconds) of an order created at `created_at`.
pub fn bucket_of(created_at: DateTime<Utc>) -> i64 {
    created_at.timestamp_millis().div_euclid(BUCKET_MILLIS) * BUCKET_MILLIS
}

/// The statuses an order can move to `status` from in one transition (other than itself).
pub fn predecessors(status: OrderStatus) -> Vec<OrderStatus> {
    OrderStatus::ALL
        .into_iter()
        .filter(|from| *from != status && Transition::ALL.iter().any(|t| from.apply(*t).ok() == Some(status)))
        .collect()
}

fn cursor_of(order: &Order) -> UserCursor {
    UserCursor { created_ms: order.created_at.timestamp_millis(), order_id: order.id.0 }
}

fn limit_plus_one(limit: u32) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX - 1).saturating_add(1)
}

fn decode_body(order_id: Uuid, body: &str) -> Result<Order, ReadModelError> {
    serde_json::from_str(body).map_err(|e| ReadModelError::CorruptRow { order_id, reason: e.to_string() })
}

fn decode_rows(result: scylla::response::query_result::QueryResult) -> Result<Vec<Order>, ReadModelError> {
    let rows = result.into_rows_result()?;
    let mut out = Vec::new();
    for row in rows.rows::<(Uuid, Option<String>)>()? {
        let (id, body) = row?;
        let body = body.ok_or_else(|| ReadModelError::CorruptRow { order_id: id, reason: "no body".to_owned() })?;
        out.push(decode_body(id, &body)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_leaves_exactly_the_statuses_it_can_come_from() {
        use OrderStatus::*;
        assert_eq!(predecessors(Pending), vec![]);
        assert_eq!(predecessors(Confirmed), vec![Pending]);
        assert_eq!(predecessors(Shipped), vec![Confirmed]);
        assert_eq!(predecessors(Delivered), vec![Shipped]);
        assert_eq!(predecessors(Cancelled), vec![Pending, Confirmed]);
    }

    #[test]
    fn buckets_are_whole_hours() -> Result<(), chrono::ParseError> {
        let t: DateTime<Utc> = "2026-11-26T12:34:56.789Z".parse()?;
        let h: DateTime<Utc> = "2026-11-26T12:00:00Z".parse()?;
        assert_eq!(bucket_of(t), h.timestamp_millis());
        assert_eq!(bucket_of(h), h.timestamp_millis());
        Ok(())
    }
}
