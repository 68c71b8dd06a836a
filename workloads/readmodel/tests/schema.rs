//! `ordexa cassandra-schema` against the real local Cassandra: concurrent runs, replication
//! changes and a clear error when the schema is missing.

use ordexa_readmodel::{ReadModel, ReadModelError, Replication, apply_schema, check_schema, schema::MIGRATIONS};
use ordexa_testkit::{self as kit, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_schema_runs_all_succeed_and_record_each_version_once() -> TestResult {
    let keyspace = kit::unique_name("schematest");
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?);
    }
    let runs = sessions.iter().map(|s| apply_schema(s, &keyspace, &Replication::Simple(1)));
    let outcomes = futures::future::try_join_all(runs).await?;
    let latest = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    assert!(outcomes.iter().all(|o| o.current_version == latest));
    let session = &sessions[0];
    let versions = session
        .query_unpaged(format!("SELECT version FROM {keyspace}.schema_versions"), &[])
        .await?
        .into_rows_result()?
        .rows::<(i32,)>()?
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(versions.len(), MIGRATIONS.len(), "{versions:?}");

    // Once more, later: nothing to do, and the model prepares its statements.
    let again = apply_schema(session, &keyspace, &Replication::Simple(1)).await?;
    assert!(!again.keyspace_created && again.applied.is_empty() && !again.replication_changed, "{again:?}");
    ReadModel::new(sessions.remove(0), &keyspace).await?;

    // A new replication setting alters the keyspace (the local node's data centre is
    // SimpleSnitch's `datacenter1`).
    let session = &sessions[0];
    let changed = apply_schema(session, &keyspace, &Replication::parse("datacenter1:1")?).await?;
    assert!(changed.replication_changed, "{changed:?}");
    let (replication,) = session
        .query_unpaged("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", (&keyspace,))
        .await?
        .into_rows_result()?
        .single_row::<(std::collections::BTreeMap<String, String>,)>()?;
    assert!(replication.get("class").is_some_and(|c| c.ends_with("NetworkTopologyStrategy")), "{replication:?}");
    assert_eq!(replication.get("datacenter1").map(String::as_str), Some("1"));
    session.query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[]).await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_schema_is_a_clear_error_naming_the_command_to_run() -> TestResult {
    let session = ordexa_readmodel::connect(&kit::cassandra_nodes()?).await?;
    let keyspace = kit::unique_name("absent");
    let err = check_schema(&session, &keyspace).await.expect_err("no such keyspace");
    assert!(matches!(err, ReadModelError::SchemaMissing(_)), "{err}");
    assert!(err.to_string().contains("ordexa cassandra-schema") && err.to_string().contains(&keyspace), "{err}");
    let err = ReadModel::new(session, "Bad-Name").await.expect_err("invalid keyspace");
    assert!(err.to_string().contains("\"Bad-Name\""), "{err}");
    Ok(())
}
