//! The system's topics for local runs and tests (`ordexa topics`); the operator manages them in
//! production. Both go through `ordexa-topics`; here a shrink is an error, as a command asked
//! for something Kafka cannot do.

pub use ordexa_topics::{TopicError, TopicOutcome, topic_names};

/// Creates the orders topic and its DLQ with `partitions` each, or grows them to it.
pub async fn ensure_topics(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<Vec<TopicOutcome>, TopicError> {
    if partitions < 1 {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let admin = ordexa_topics::Admin::connect(bootstrap, "ordexa-topics")?;
    let mut outcomes = Vec::new();
    for topic in topic_names(prefix) {
        match admin.ensure(&topic, partitions, replication_factor).await? {
            TopicOutcome::ShrinkRefused { topic, current, requested } => {
                return Err(TopicError::WouldShrink { topic, current, requested });
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_topics_are_the_ones_the_contract_names() {
        assert_eq!(
            super::topic_names("shop."),
            [ordexa_domain::topic_name("shop."), ordexa_domain::dlq_topic_name("shop.")]
        );
    }
}
