//! Order commands and the reads the API serves from the write model.
//!
//! A command locks the order row (`FOR UPDATE`), checks the caller's expected version, applies
//! the domain change, writes the rows and inserts one outbox row with the full-snapshot event —
//! all in one transaction. The row lock also serialises the outbox rows of one order, which is
//! what lets the relay keep per-order order.

use ordexa_domain::{
    Currency, DomainError, FieldError, ItemRequest, Order, OrderEvent, OrderId, OrderItem, OrderStatus,
    ShippingAddress, Sku, Transition, now_micros, price_items,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::catalog::products_by_sku;
use crate::{Result, Store, StoreError};

/// Who is asking: the token's subject and whether it carries the admin role.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub is_admin: bool,
}

impl Actor {
    /// Users see only their own orders; admins see every order.
    pub fn may_access(&self, order: &Order) -> bool {
        self.is_admin || order.user_id == self.user_id
    }
}

/// An `Idempotency-Key` and the hash of the request body it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// Place a new order for `user_id`.
#[derive(Debug, Clone)]
pub struct CreateOrder {
    pub user_id: String,
    pub items: Vec<ItemRequest>,
    pub shipping_address: ShippingAddress,
    pub idempotency: Option<IdempotencyKey>,
    /// W3C trace context carried to the event's headers.
    pub traceparent: String,
}

/// What a create did.
#[derive(Debug)]
pub enum CreateOutcome {
    /// A new order; `body` is its JSON, exactly as stored for idempotent replays.
    Created { order: Box<Order>, body: String },
    /// The key was seen before with the same body: the first response, unchanged.
    Replayed { status: u16, body: String, order_id: OrderId },
}

/// A change to an existing order.
#[derive(Debug, Clone)]
pub enum OrderChange {
    Transition(Transition),
    /// New items and/or address; only while PENDING.
    Revise {
        items: Option<Vec<ItemRequest>>,
        shipping_address: Option<ShippingAddress>,
    },
}

/// Validates the address and prices the items inside the transaction, reporting every field
/// error at once.
async fn price_request(
    conn: &mut PgConnection,
    items: Option<&[ItemRequest]>,
    address: Option<&ShippingAddress>,
) -> Result<Option<ordexa_domain::PricedItems>> {
    let mut errors: Vec<FieldError> = address.map(|a| a.validate("/shipping_address")).unwrap_or_default();
    let priced = match items {
        None => None,
        Some(items) => {
            // Only well-formed skus are looked up: the others are refused by `price_items`, and
            // text PostgreSQL cannot hold (a NUL) would fail the query instead.
            let skus: Vec<String> =
                items.iter().filter(|i| Sku::parse(&i.sku).is_ok()).map(|i| i.sku.clone()).collect();
            let catalog = products_by_sku(conn, &skus).await?;
            match price_items(items, &catalog) {
                Ok(priced) => Some(priced),
                Err(DomainError::Validation(mut item_errors)) => {
                    errors.append(&mut item_errors);
                    None
                }
                Err(other) if errors.is_empty() => return Err(other.into()),
                Err(_) => None,
            }
        }
    };
    if !errors.is_empty() {
        return Err(DomainError::Validation(errors).into());
    }
    Ok(priced)
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency, total, shipping_address, version, created_at, updated_at";

fn order_from_row(row: &PgRow, items: Vec<OrderItem>) -> Result<Order> {
    let id: Uuid = row.try_get("id")?;
    let corrupt = |what: &str, err: String| StoreError::CorruptRow(format!("order {id} {what}: {err}"));
    let status: String = row.try_get("status")?;
    let currency: String = row.try_get("currency")?;
    let Json(shipping_address): Json<ShippingAddress> = row.try_get("shipping_address")?;
    Ok(Order {
        id: OrderId(id),
        user_id: row.try_get("user_id")?,
        status: status.parse::<OrderStatus>().map_err(|e| corrupt("status", e.to_string()))?,
        items,
        currency: Currency::parse(&currency).map_err(|e| corrupt("currency", e.to_string()))?,
        total: row.try_get("total")?,
        shipping_address,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn item_from_row(row: &PgRow) -> Result<(Uuid, OrderItem)> {
    let order_id: Uuid = row.try_get("order_id")?;
    let sku: String = row.try_get("sku")?;
    let quantity: i32 = row.try_get("quantity")?;
    Ok((
        order_id,
        OrderItem {
            sku: Sku::parse(&sku).map_err(|e| StoreError::CorruptRow(format!("order {order_id} item sku: {e}")))?,
            name: row.try_get("name")?,
            quantity: u32::try_from(quantity)
                .map_err(|e| StoreError::CorruptRow(format!("order {order_id} item quantity {quantity}: {e}")))?,
            unit_price: row.try_get("unit_price")?,
            line_total: row.try_get("line_total")?,
        },
    ))
}

/// Loads whole orders for the given order rows, keeping the rows' order.
async fn with_items(conn: &mut PgConnection, rows: Vec<PgRow>) -> Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
    let item_rows = sqlx::query(
        "SELECT order_id, sku, name, quantity, unit_price, line_total FROM order_items \
         WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut items: std::collections::HashMap<Uuid, Vec<OrderItem>> = std::collections::HashMap::new();
    for row in &item_rows {
        let (order_id, item) = item_from_row(row)?;
        items.entry(order_id).or_default().push(item);
    }
    rows.iter().zip(ids).map(|(row, id)| order_from_row(row, items.remove(&id).unwrap_or_default())).collect()
}

async fn load_order(conn: &mut PgConnection, id: OrderId, lock: bool) -> Result<Option<Order>> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&mut *conn).await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(with_items(conn, vec![row]).await?.pop()),
    }
}

async fn insert_items(conn: &mut PgConnection, order: &Order) -> Result<()> {
    let line_nos: Vec<i32> = (1..).take(order.items.len()).collect();
    let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
    let names: Vec<&str> = order.items.iter().map(|i| i.name.as_str()).collect();
    let quantities: Vec<i32> = order
        .items
        .iter()
        .map(|i| i32::try_from(i.quantity))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::CorruptRow(format!("order {} item quantity: {e}", order.id)))?;
    let prices: Vec<i64> = order.items.iter().map(|i| i.unit_price).collect();
    let totals: Vec<i64> = order.items.iter().map(|i| i.line_total).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price, line_total) \
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[])",
    )
    .bind(order.id.0)
    .bind(&line_nos)
    .bind(&skus)
    .bind(&names)
    .bind(&quantities)
    .bind(&prices)
    .bind(&totals)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Places an order: prices it from the catalog, writes it and its `order.created` event.
    ///
    /// With an idempotency key, the key's row is inserted first: a concurrent request with the
    /// same key blocks on it and then sees the committed first response. A failed command rolls
    /// the key back too, so a corrected retry may reuse it.
    pub async fn create_order(&self, cmd: CreateOrder) -> Result<CreateOutcome> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = &cmd.idempotency {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&cmd.user_id)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                let row = sqlx::query(
                    "SELECT request_hash, response_status, response_body, order_id FROM idempotency_keys \
                     WHERE user_id = $1 AND key = $2",
                )
                .bind(&cmd.user_id)
                .bind(&idem.key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                let stored_hash: Vec<u8> = row.try_get("request_hash")?;
                if stored_hash != idem.request_hash {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                let status: Option<i32> = row.try_get("response_status")?;
                let body: Option<String> = row.try_get("response_body")?;
                let order_id: Option<Uuid> = row.try_get("order_id")?;
                return match (status, body, order_id) {
                    (Some(status), Some(body), Some(order_id)) => Ok(CreateOutcome::Replayed {
                        status: u16::try_from(status).unwrap_or(500),
                        body,
                        order_id: OrderId(order_id),
                    }),
                    _ => Err(StoreError::CorruptRow(format!("idempotency key {:?} has no stored response", idem.key))),
                };
            }
        }

        let priced = price_request(&mut tx, Some(&cmd.items), Some(&cmd.shipping_address))
            .await?
            .ok_or_else(|| StoreError::CorruptRow("pricing returned no items".into()))?;
        let order = Order::place(OrderId::new(), cmd.user_id, priced, cmd.shipping_address, now_micros());
        sqlx::query(
            "INSERT INTO orders (id, user_id, status, currency, total, shipping_address, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(order.id.0)
        .bind(&order.user_id)
        .bind(order.status.as_str())
        .bind(order.currency.as_str())
        .bind(order.total)
        .bind(Json(&order.shipping_address))
        .bind(order.version)
        .bind(order.created_at)
        .bind(order.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_items(&mut tx, &order).await?;
        crate::outbox::insert(&mut tx, &OrderEvent::created(&order), &cmd.traceparent).await?;

        let body = serde_json::to_string(&order).map_err(|e| StoreError::CorruptRow(format!("order: {e}")))?;
        if let Some(idem) = &cmd.idempotency {
            sqlx::query(
                "UPDATE idempotency_keys SET response_status = 201, response_body = $3, order_id = $4 \
                 WHERE user_id = $1 AND key = $2",
            )
            .bind(&order.user_id)
            .bind(&idem.key)
            .bind(&body)
            .bind(order.id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CreateOutcome::Created { order: Box::new(order), body })
    }

    /// Applies `change` to the order, if the actor may see it and it is at `expected_version`
    /// (when given), writing the new state and its `order.updated` event.
    pub async fn change_order(
        &self,
        id: OrderId,
        actor: &Actor,
        change: OrderChange,
        expected_version: Option<i64>,
        traceparent: &str,
    ) -> Result<Order> {
        let mut tx = self.pool.begin().await?;
        let mut order = match load_order(&mut tx, id, true).await? {
            Some(order) if actor.may_access(&order) => order,
            _ => return Err(StoreError::OrderNotFound(id)),
        };
        if let Some(expected) = expected_version
            && expected != order.version
        {
            return Err(StoreError::VersionMismatch { id, current: order.version, expected });
        }
        let now = now_micros();
        let items_changed = match change {
            OrderChange::Transition(t) => {
                order.transition(t, now)?;
                false
            }
            OrderChange::Revise { items, shipping_address } => {
                if !order.status.is_editable() {
                    return Err(DomainError::NotEditable { status: order.status }.into());
                }
                let priced = price_request(&mut tx, items.as_deref(), shipping_address.as_ref()).await?;
                let changed = priced.is_some();
                order.revise(priced, shipping_address, now)?;
                changed
            }
        };
        sqlx::query(
            "UPDATE orders SET status = $2, currency = $3, total = $4, shipping_address = $5, version = $6, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(order.id.0)
        .bind(order.status.as_str())
        .bind(order.currency.as_str())
        .bind(order.total)
        .bind(Json(&order.shipping_address))
        .bind(order.version)
        .bind(order.updated_at)
        .execute(&mut *tx)
        .await?;
        if items_changed {
            sqlx::query("DELETE FROM order_items WHERE order_id = $1").bind(order.id.0).execute(&mut *tx).await?;
            insert_items(&mut tx, &order).await?;
        }
        crate::outbox::insert(&mut tx, &OrderEvent::updated(&order), traceparent).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// The order, if the actor may see it.
    /// Every order with an id above `after` (all when `None`), in id order, at most `limit`: the
    /// write model page by page, for `ordexa reconcile`.
    pub async fn orders_after(&self, after: Option<OrderId>, limit: i64) -> Result<Vec<Order>> {
        let mut conn = self.pool.acquire().await?;
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2");
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.map(|id| id.0)).bind(limit).fetch_all(&mut *conn).await?;
        with_items(&mut conn, rows).await
    }

    pub async fn get_order(&self, id: OrderId, actor: &Actor) -> Result<Order> {
        let mut conn = self.pool.acquire().await?;
        match load_order(&mut conn, id, false).await? {
            Some(order) if actor.may_access(&order) => Ok(order),
            _ => Err(StoreError::OrderNotFound(id)),
        }
    }
}
