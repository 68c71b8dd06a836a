//! The read model's CQL schema: a keyspace and its tables, applied by `ordexa cassandra-schema`.
//!
//! Versioned: each [`MIGRATIONS`] entry is applied once and recorded in `schema_versions`.
//! Idempotent and safe when several processes run it at once: every statement is `IF NOT
//! EXISTS`, so a second runner's statements are no-ops, and each DDL waits for schema
//! agreement before the next one. Statements are never edited once shipped; a change is a new
//! entry.

use std::collections::BTreeMap;
use std::fmt;

use scylla::client::session::Session;
use scylla::value::CqlTimestamp;

use crate::ReadModelError;

/// One schema version: its statements, with `{ks}` standing for the keyspace.
pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub statements: &'static [&'static str],
}

/// Every schema version, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "orders_by_id, orders_by_user, orders_by_status (hour buckets), order_buckets",
    statements: &[
        "CREATE TABLE IF NOT EXISTS {ks}.orders_by_id (
            order_id uuid PRIMARY KEY,
            user_id text, status text, version bigint,
            created_at timestamp, updated_at timestamp,
            body text)",
        "CREATE TABLE IF NOT EXISTS {ks}.orders_by_user (
            user_id text, created_at timestamp, order_id uuid,
            status text, version bigint, body text,
            PRIMARY KEY ((user_id), created_at, order_id))
            WITH CLUSTERING ORDER BY (created_at DESC, order_id DESC)",
        "CREATE TABLE IF NOT EXISTS {ks}.orders_by_status (
            status text, bucket timestamp, created_at timestamp, order_id uuid,
            user_id text, version bigint, body text,
            PRIMARY KEY ((status, bucket), created_at, order_id))
            WITH CLUSTERING ORDER BY (created_at DESC, order_id DESC)",
        "CREATE TABLE IF NOT EXISTS {ks}.order_buckets (
            shard int, bucket timestamp,
            PRIMARY KEY ((shard), bucket))
            WITH CLUSTERING ORDER BY (bucket DESC)",
    ],
}];

/// How the keyspace's data is replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this many replicas (single data centre, development).
    Simple(u32),
    /// `NetworkTopologyStrategy`: replicas per data centre.
    PerDatacenter(BTreeMap<String, u32>),
}

impl Replication {
    /// Parses `3` (SimpleStrategy) or `dc1:3,dc2:2` (NetworkTopologyStrategy).
    pub fn parse(raw: &str) -> Result<Self, ReadModelError> {
        let invalid = |why: String| ReadModelError::Config(format!("replication {raw:?}: {why}"));
        let factor = |s: &str| -> Result<u32, ReadModelError> {
            match s.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(invalid(format!("{s:?} is not a replica count of at least 1"))),
            }
        };
        if !raw.contains(':') {
            return Ok(Replication::Simple(factor(raw)?));
        }
        let mut dcs = BTreeMap::new();
        for part in raw.split(',') {
            let (dc, n) = part.split_once(':').ok_or_else(|| invalid(format!("{part:?} is not dc:replicas")))?;
            let dc = dc.trim();
            if dc.is_empty() || !dc.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(invalid(format!("{dc:?} is not a data centre name")));
            }
            if dcs.insert(dc.to_owned(), factor(n)?).is_some() {
                return Err(invalid(format!("data centre {dc:?} is named twice")));
            }
        }
        Ok(Replication::PerDatacenter(dcs))
    }

    /// The CQL map literal of `WITH replication = …`.
    pub fn cql(&self) -> String {
        match self {
            Replication::Simple(n) => format!("{{'class': 'SimpleStrategy', 'replication_factor': {n}}}"),
            Replication::PerDatacenter(dcs) => {
                let mut out = "{'class': 'NetworkTopologyStrategy'".to_owned();
                for (dc, n) in dcs {
                    out.push_str(&format!(", '{dc}': {n}"));
                }
                out.push('}');
                out
            }
        }
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cql())
    }
}

/// A keyspace name Cassandra accepts unquoted: a letter, then letters, digits or `_`, at most
/// 48 characters. Names are lower-cased by Cassandra, so upper case is refused to avoid surprises.
pub fn validate_keyspace(name: &str) -> Result<(), ReadModelError> {
    let ok = (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ReadModelError::Config(format!(
            "keyspace {name:?} must be 1-48 characters: a lower-case letter, then lower-case letters, digits or _"
        )))
    }
}

/// What [`apply_schema`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaOutcome {
    pub keyspace_created: bool,
    pub replication_changed: bool,
    /// Versions this run applied (empty when the schema was current).
    pub applied: Vec<i32>,
    pub current_version: i32,
}

/// Creates the keyspace (or brings its replication to `replication`) and applies every
/// migration not yet recorded.
pub async fn apply_schema(
    session: &Session,
    keyspace: &str,
    replication: &Replication,
) -> Result<SchemaOutcome, ReadModelError> {
    validate_keyspace(keyspace)?;
    let existing = current_replication(session, keyspace).await?;
    let keyspace_created = existing.is_none();
    let mut replication_changed = false;
    match existing {
        None => {
            ddl(session, format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}", replication.cql()))
                .await?;
        }
        Some(current) if current != *replication => {
            tracing::warn!(%keyspace, from = %current, to = %replication,
                "changing the keyspace's replication; run a full repair afterwards");
            ddl(session, format!("ALTER KEYSPACE {keyspace} WITH replication = {}", replication.cql())).await?;
            replication_changed = true;
        }
        Some(_) => {}
    }
    ddl(
        session,
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_versions (
                version int PRIMARY KEY, description text, applied_at timestamp)"
        ),
    )
    .await?;
    let done = applied_versions(session, keyspace).await?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if done.contains(&migration.version) {
            continue;
        }
        for statement in migration.statements {
            ddl(session, statement.replace("{ks}", keyspace)).await?;
        }
        let insert =
            format!("INSERT INTO {keyspace}.schema_versions (version, description, applied_at) VALUES (?, ?, ?)");
        let now = CqlTimestamp(chrono::Utc::now().timestamp_millis());
        session.query_unpaged(insert, (migration.version, migration.description, now)).await?;
        tracing::info!(%keyspace, version = migration.version, description = migration.description, "schema version applied");
        applied.push(migration.version);
    }
    let current_version = MIGRATIONS.last().map_or(0, |m| m.version);
    Ok(SchemaOutcome { keyspace_created, replication_changed, applied, current_version })
}

/// Fails unless the keyspace holds every schema version this build knows; workloads call it
/// at start-up so a missing `cassandra-schema` run is a clear error, not a failed query later.
pub async fn check_schema(session: &Session, keyspace: &str) -> Result<(), ReadModelError> {
    validate_keyspace(keyspace)?;
    if current_replication(session, keyspace).await?.is_none() {
        return Err(ReadModelError::SchemaMissing(format!(
            "keyspace {keyspace} does not exist; run `ordexa cassandra-schema` first"
        )));
    }
    let done = applied_versions(session, keyspace).await.map_err(|e| {
        ReadModelError::SchemaMissing(format!(
            "keyspace {keyspace} has no schema_versions table ({e}); run `ordexa cassandra-schema`"
        ))
    })?;
    let missing: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).filter(|v| !done.contains(v)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ReadModelError::SchemaMissing(format!(
            "keyspace {keyspace} lacks schema versions {missing:?}; run `ordexa cassandra-schema`"
        )))
    }
}

async fn ddl(session: &Session, statement: String) -> Result<(), ReadModelError> {
    session.query_unpaged(statement, &[]).await?;
    session.await_schema_agreement().await?;
    Ok(())
}

async fn applied_versions(session: &Session, keyspace: &str) -> Result<Vec<i32>, ReadModelError> {
    let rows = session
        .query_unpaged(format!("SELECT version FROM {keyspace}.schema_versions"), &[])
        .await?
        .into_rows_result()?;
    let mut out = Vec::new();
    for row in rows.rows::<(i32,)>()? {
        out.push(row?.0);
    }
    Ok(out)
}

async fn current_replication(session: &Session, keyspace: &str) -> Result<Option<Replication>, ReadModelError> {
    let rows = session
        .query_unpaged("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", (keyspace,))
        .await?
        .into_rows_result()?;
    let Some((map,)) = rows.maybe_first_row::<(BTreeMap<String, String>,)>()? else {
        return Ok(None);
    };
    let class = map.get("class").map(String::as_str).unwrap_or_default();
    let replication = if class.ends_with("SimpleStrategy") {
        let n = map.get("replication_factor").and_then(|n| n.parse().ok()).unwrap_or(0);
        Replication::Simple(n)
    } else {
        Replication::PerDatacenter(
            map.iter()
                .filter(|(k, _)| k.as_str() != "class")
                .map(|(k, v)| (k.clone(), v.parse().unwrap_or(0)))
                .collect(),
        )
    };
    Ok(Some(replication))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_parses_a_count_or_data_centres() -> Result<(), ReadModelError> {
        assert_eq!(Replication::parse("3")?, Replication::Simple(3));
        let per_dc = Replication::parse("dc1:3, dc2:2")?;
        assert_eq!(per_dc.cql(), "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}");
        assert_eq!(Replication::Simple(1).cql(), "{'class': 'SimpleStrategy', 'replication_factor': 1}");
        Ok(())
    }

    #[test]
    fn bad_replication_names_what_is_wrong() {
        for (raw, needle) in [("0", "\"0\""), ("x", "\"x\""), ("dc1:3,dc1:2", "named twice"), ("dc 1:3", "\"dc 1\"")] {
            let err = Replication::parse(raw).expect_err(raw).to_string();
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }

    #[test]
    fn keyspace_names_are_checked_before_they_reach_cql() {
        assert!(validate_keyspace("ordexa_test_1").is_ok());
        for bad in ["", "1abc", "Ordexa", "a-b", "ks; DROP KEYSPACE x", &"a".repeat(49)] {
            assert!(validate_keyspace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn migration_versions_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert!(MIGRATIONS.iter().all(|m| m.statements.iter().all(|s| s.contains("IF NOT EXISTS"))));
    }
}
