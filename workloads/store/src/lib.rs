//! The write model on PostgreSQL.
//!
//! Owns the schema (embedded, versioned migrations), the product catalog, and the order
//! commands. Every command is one transaction that changes the order rows and inserts exactly
//! one outbox row carrying the event; nothing is published outside the outbox.

mod catalog;
pub mod idempotency;
mod orders;
pub mod outbox;
pub mod trace;

use std::time::Duration;

use ordexa_domain::{DomainError, OrderId, Sku};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use orders::{Actor, CreateOrder, CreateOutcome, IdempotencyKey, OrderChange};

/// Why a write-model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    #[error("order {id} is at version {current}, the request expected version {expected}")]
    VersionMismatch { id: OrderId, current: i64, expected: i64 },
    #[error("the Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("a product with sku {0} already exists")]
    ProductExists(Sku),
    #[error("product {0} not found")]
    ProductNotFound(Sku),
    #[error("stored row is unreadable: {0}")]
    CorruptRow(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Connects a pool to the write-model database.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A ping on every checkout is one more round trip per command (the benchmark saw it);
        // a broken connection still surfaces as an error on first use and is replaced.
        .test_before_acquire(false)
        .connect(url)
        .await?;
    Ok(pool)
}

/// Applies the embedded migrations. sqlx takes a PostgreSQL advisory lock around the run, so
/// several processes may call this at once; each applied version is recorded and skipped later.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// The write model: catalog and orders.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub use catalog::DEV_CATALOG;
pub use sqlx::Error as SqlxError;
