//! `ordexa dlq list|show|replay` as an operator runs them, against the real local Kafka.

use std::process::{Command, Output};
use std::time::Duration;

use ordexa_testkit::{self as kit, TestResult};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

fn ordexa(prefix: &str, args: &[&str]) -> Result<Output, kit::Failure> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ordexa"))
        .args(args)
        .env("ORDEXA_KAFKA_BOOTSTRAP", kit::kafka_bootstrap()?)
        .env("ORDEXA_TOPIC_PREFIX", prefix)
        .env("RUST_LOG", "error")
        .output()?)
}

fn stdout_of(output: &Output) -> Result<String, kit::Failure> {
    if !output.status.success() {
        return Err(format!("ordexa failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn an_operator_lists_shows_and_replays_dead_letters() -> TestResult {
    let prefix = format!("{}.", kit::unique_name("dlqcli"));
    let bootstrap = kit::kafka_bootstrap()?;
    ordexa_topics::ensure_topics(&bootstrap, &prefix, 1, 1).await?;
    let (topic, dlq) = (ordexa_topics::orders_topic(&prefix), ordexa_topics::dlq_topic(&prefix));
    let producer = kit::kafka_producer()?;
    let headers = OwnedHeaders::new()
        .insert(Header { key: "dlq.error", value: Some("the value is not JSON: expected value at line 1 column 1") })
        .insert(Header { key: "dlq.source.topic", value: Some(topic.as_str()) })
        .insert(Header { key: "dlq.source.partition", value: Some("0") })
        .insert(Header { key: "dlq.source.offset", value: Some("17") })
        .insert(Header { key: "dlq.attempts", value: Some("1") })
        .insert(Header { key: "dlq.dead_lettered_at", value: Some("2026-11-26T12:00:00.000000Z") })
        .insert(Header { key: "traceparent", value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") });
    producer
        .send(FutureRecord::to(&dlq).key("order-key").payload("garbage").headers(headers), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;

    let listed = stdout_of(&ordexa(&prefix, &["dlq", "list"])?)?;
    assert!(listed.starts_with(&format!("1 dead letter(s) in {dlq}")), "{listed}");
    assert!(listed.contains("0:0\tkey=order-key") && listed.contains(&format!("source={topic}/0:17")), "{listed}");
    assert!(listed.contains("error=the value is not JSON"), "{listed}");

    let shown = stdout_of(&ordexa(&prefix, &["dlq", "show", "0:0"])?)?;
    assert!(shown.contains("header dlq.source.offset: 17") && shown.contains("value:\ngarbage"), "{shown}");

    let replayed = stdout_of(&ordexa(&prefix, &["dlq", "replay", "--all"])?)?;
    assert!(replayed.contains("replayed 1 dead letter(s)"), "{replayed}");
    let back = kit::read_topic(&topic).await?;
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].key.as_deref(), back[0].payload.as_slice()), (Some("order-key"), &b"garbage"[..]));
    assert_eq!(back[0].header("dlq.replayed_from"), Some(format!("{dlq}/0:0").as_str()));
    assert_eq!(back[0].header("traceparent"), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(back[0].header("dlq.error"), None, "the dead-letter headers are not carried back");

    // Bad input names what is wrong.
    let bad = ordexa(&prefix, &["dlq", "show", "zero"])?;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("partition:offset"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let missing = ordexa(&prefix, &["dlq", "show", "0:5"])?;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("holds offsets 0..1"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let neither = ordexa(&prefix, &["dlq", "replay"])?;
    assert!(!neither.status.success(), "replay without positions or --all is refused");
    Ok(())
}
