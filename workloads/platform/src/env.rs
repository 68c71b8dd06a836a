//! The configuration contract: every environment variable an Ordexa process reads, named once.
//! `ordexa`'s arguments (clap's `env`) and the operator's pod builder both use these constants,
//! so a name cannot drift between the two; a test in `workloads/ordexa` proves that every
//! variable the operator sets for a role is accepted by that role's arguments.

// Every role.
/// Log line format: `text` or `json`.
pub const LOG_FORMAT: &str = "ORDEXA_LOG_FORMAT";
/// Listen address of a long-running role's HTTP server (the API, the web role, or the ops
/// endpoints of relay and projector).
pub const HTTP_ADDR: &str = "ORDEXA_HTTP_ADDR";
/// The log filter (tracing's `EnvFilter` syntax).
pub const RUST_LOG: &str = "RUST_LOG";

// PostgreSQL.
/// `postgres://…` of the write model.
pub const DATABASE_URL: &str = "ORDEXA_DATABASE_URL";
/// Largest PostgreSQL connection pool of the API.
pub const DATABASE_MAX_CONNECTIONS: &str = "ORDEXA_DATABASE_MAX_CONNECTIONS";

// Kafka.
/// `host:port[,host:port…]`.
pub const KAFKA_BOOTSTRAP: &str = "ORDEXA_KAFKA_BOOTSTRAP";
/// Prefix of the system's topic names (default `ordexa.`).
pub const TOPIC_PREFIX: &str = "ORDEXA_TOPIC_PREFIX";
/// Partitions of the topics `ordexa topics` and `ordexa dev` create or grow to.
pub const TOPIC_PARTITIONS: &str = "ORDEXA_TOPIC_PARTITIONS";
/// Replication factor of topics `ordexa topics` creates.
pub const TOPIC_REPLICATION_FACTOR: &str = "ORDEXA_TOPIC_REPLICATION_FACTOR";

// Cassandra.
/// `host:port[,host:port…]`.
pub const CASSANDRA_NODES: &str = "ORDEXA_CASSANDRA_NODES";
/// Keyspace of the read model (default `ordexa`).
pub const CASSANDRA_KEYSPACE: &str = "ORDEXA_CASSANDRA_KEYSPACE";
/// Replication of the keyspace: a count, or `dc:count[,dc:count…]`.
pub const CASSANDRA_REPLICATION_FACTOR: &str = "ORDEXA_CASSANDRA_REPLICATION_FACTOR";

// Authentication.
/// HS256 secret (development only).
pub const JWT_SECRET: &str = "ORDEXA_JWT_SECRET";

// The API.
/// How long a read waits for the read model to reach a version the client asked for.
pub const READ_WAIT: &str = "ORDEXA_READ_WAIT";
/// Largest accepted request body, in bytes.
pub const BODY_LIMIT: &str = "ORDEXA_BODY_LIMIT";
/// Longest time one API request may take before it is answered 503.
pub const REQUEST_TIMEOUT: &str = "ORDEXA_REQUEST_TIMEOUT";
/// Most API requests one process works on at once; more are answered 503.
pub const MAX_IN_FLIGHT: &str = "ORDEXA_MAX_IN_FLIGHT";
/// Longest time one Cassandra request of the API may take.
pub const READ_MODEL_TIMEOUT: &str = "ORDEXA_READ_MODEL_TIMEOUT";
/// How long idempotency keys are kept before they are purged.
pub const IDEMPOTENCY_KEY_TTL: &str = "ORDEXA_IDEMPOTENCY_KEY_TTL";

// The relay.
pub const RELAY_BATCH_SIZE: &str = "ORDEXA_RELAY_BATCH_SIZE";
pub const RELAY_POLL_INTERVAL: &str = "ORDEXA_RELAY_POLL_INTERVAL";
pub const RELAY_BATCHES_IN_FLIGHT: &str = "ORDEXA_RELAY_BATCHES_IN_FLIGHT";
pub const RELAY_VACUUM_EVERY: &str = "ORDEXA_RELAY_VACUUM_EVERY";
/// The relays' Kafka `transactional.id` (default `<prefix>relay`); one per system.
pub const RELAY_TRANSACTIONAL_ID: &str = "ORDEXA_RELAY_TRANSACTIONAL_ID";

// The projector.
pub const PROJECTOR_GROUP: &str = "ORDEXA_PROJECTOR_GROUP";
pub const PROJECTOR_BATCH_SIZE: &str = "ORDEXA_PROJECTOR_BATCH_SIZE";
pub const PROJECTOR_CONCURRENCY: &str = "ORDEXA_PROJECTOR_CONCURRENCY";

// The web role.
/// Base URL of the API that `/api/` is forwarded to.
pub const API_UPSTREAM: &str = "ORDEXA_API_UPSTREAM";
/// The built frontend.
pub const WEB_ASSETS: &str = "ORDEXA_WEB_ASSETS";
/// Development sign-in at `POST /dev/token`.
pub const DEV_SIGN_IN: &str = "ORDEXA_DEV_SIGN_IN";

// `ordexa dev` only.
pub const DEV_RELAY_ADDR: &str = "ORDEXA_DEV_RELAY_ADDR";
pub const DEV_PROJECTOR_ADDR: &str = "ORDEXA_DEV_PROJECTOR_ADDR";

// The operator.
pub const OPERATOR_METRICS_ADDR: &str = "ORDEXA_OPERATOR_METRICS_ADDR";
pub const OPERATOR_LEADER_ELECTION: &str = "ORDEXA_OPERATOR_LEADER_ELECTION";
pub const OPERATOR_LEASE_NAME: &str = "ORDEXA_OPERATOR_LEASE_NAME";
pub const OPERATOR_WATCH_NAMESPACE: &str = "ORDEXA_OPERATOR_WATCH_NAMESPACE";
/// The operator pod's namespace and name (Kubernetes' downward API).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const POD_NAME: &str = "POD_NAME";
