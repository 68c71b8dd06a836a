//! Order endpoints: thin handlers that extract, call the write model (commands) or the read
//! model (reads and lists), and map the result.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ordexa_domain::{ItemRequest, Order, OrderId, OrderStatus, ShippingAddress, Transition};
use ordexa_readmodel::{StatusCursor, UserCursor};
use ordexa_store::{CreateOrder, CreateOutcome, IdempotencyKey, OrderChange};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{IdempotencyKeyHeader, IfMatch, JsonBody, TraceParent};
use crate::problem::{ApiError, Problem};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// Place an order: skus and quantities; prices come from the catalog.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<ItemRequest>,
    pub shipping_address: ShippingAddress,
}

/// Change a PENDING order's items and/or shipping address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrderRequest {
    pub items: Option<Vec<ItemRequest>>,
    pub shipping_address: Option<ShippingAddress>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<Order>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Admins only: list every order in this status instead of the caller's own.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Wait briefly until the order has reached at least this version (the read model is
    /// updated asynchronously); answers 503 `projection-behind` if it does not in time.
    pub min_version: Option<i64>,
}

/// What a page token encodes: which listing it continues, and where.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct PageToken<C> {
    /// `user:<id>` or `status:<STATUS>`; a token is refused by any other listing.
    listing: String,
    after: C,
}

fn encode_token<C: Serialize>(listing: &str, cursor: C) -> Result<String, ApiError> {
    let json = serde_json::to_vec(&PageToken { listing: listing.to_owned(), after: cursor })
        .map_err(|e| ApiError::Internal(format!("page token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_token<C: DeserializeOwned>(listing: &str, token: &str) -> Result<C, ApiError> {
    let invalid = || ApiError::BadRequest("page_token is not a token this listing returned".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: PageToken<C> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.listing != listing {
        return Err(invalid());
    }
    Ok(token.after)
}

fn parse_order_id(raw: &str) -> Result<OrderId, ApiError> {
    Uuid::parse_str(raw).map(OrderId).map_err(|_| ApiError::BadRequest(format!("order id must be a UUID, got {raw:?}")))
}

fn etag(version: i64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn order_response(status: StatusCode, order: &Order) -> Response {
    let mut response = (status, Json(order)).into_response();
    response.headers_mut().insert(ETAG, etag(order.version));
    response
}

fn created_response(status: StatusCode, id: OrderId, version: i64, body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ETAG, etag(version));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/orders/{id}")) {
        headers.insert(LOCATION, location);
    }
    (status, headers, body).into_response()
}

/// Place an order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key returns the first response")),
    responses(
        (status = 201, description = "Created", body = Order, headers(("Location" = String), ("ETag" = String))),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 422, description = "Invalid items or address, unknown or inactive sku, mixed currencies, or an Idempotency-Key reused with another body", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    TraceParent(traceparent): TraceParent,
    body: JsonBody<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    let cmd = CreateOrder {
        user_id: actor.user_id,
        items: body.value.items,
        shipping_address: body.value.shipping_address,
        idempotency: key.map(|key| IdempotencyKey { key, request_hash: body.canonical_hash }),
        traceparent,
    };
    Ok(match state.store.create_order(cmd).await? {
        CreateOutcome::Created { order, body } => {
            metrics::counter!("ordexa_orders_created_total").increment(1);
            created_response(StatusCode::CREATED, order.id, order.version, body)
        }
        CreateOutcome::Replayed { status, body, order_id } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
            created_response(status, order_id, 1, body)
        }
    })
}

/// Read one order.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path), GetParams),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Query(params): Query<GetParams>,
) -> Result<Response, ApiError> {
    let id = parse_order_id(&id)?;
    if let Some(v) = params.min_version
        && v < 1
    {
        return Err(ApiError::field("/min_version", "must be at least 1"));
    }
    let order = read_order(&state, &actor, id, params.min_version).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Reads an order from the read model, waiting (at most `state.read_wait`) until it reaches
/// `min_version` (1 when not given). An order the read model lacks is looked up in the write
/// model first: unknown (or someone else's) is a 404 at once; committed but not projected yet
/// is waited for, so following a create's `Location` right away never answers 404.
async fn read_order(
    state: &AppState,
    actor: &ordexa_store::Actor,
    id: OrderId,
    min_version: Option<i64>,
) -> Result<Order, ApiError> {
    let deadline = tokio::time::Instant::now() + state.read_wait;
    let visible = |order: Option<Order>| order.filter(|o| actor.may_access(o));
    let mut seen = visible(state.reads.get(id).await?);
    if seen.is_none() {
        state.store.get_order(id, actor).await?;
    }
    let want = min_version.unwrap_or(1);
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        if let Some(order) = seen.take_if(|order| order.version >= want) {
            return Ok(order);
        }
        if tokio::time::Instant::now() + pause > deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
        seen = visible(state.reads.get(id).await?);
    }
    metrics::counter!("ordexa_api_read_wait_timeouts_total").increment(1);
    let waited = state.read_wait.as_millis();
    Err(ApiError::ProjectionBehind(match seen {
        Some(order) => format!(
            "order {id} is at version {} in the read model; version {want} was asked for and did not arrive within {waited} ms",
            order.version
        ),
        None => format!("order {id} is committed but not in the read model yet (waited {waited} ms)"),
    }))
}

/// List the caller's orders, newest first; admins may list every order in one status.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(ListParams),
    responses((status = 200, body = OrderList), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_orders(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<OrderList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::field("/limit", format!("must be between 1 and {MAX_PAGE_SIZE}, got {limit}")));
    }
    match params.status {
        Some(raw) => {
            if !actor.is_admin {
                return Err(ApiError::Forbidden("listing by status needs the admin role".to_owned()));
            }
            let status: OrderStatus =
                raw.parse().map_err(|e: ordexa_domain::ParseStatusError| ApiError::field("/status", e.to_string()))?;
            let listing = format!("status:{}", status.as_str());
            let after: Option<StatusCursor> =
                params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            let page = state.reads.list_by_status(status, limit, after).await?;
            let next_page_token = page.next.map(|cursor| encode_token(&listing, cursor)).transpose()?;
            Ok(Json(OrderList { items: page.orders, next_page_token }))
        }
        None => {
            let listing = format!("user:{}", actor.user_id);
            let after: Option<UserCursor> =
                params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            let page = state.reads.list_by_user(&actor.user_id, limit, after).await?;
            let next_page_token = page.next.map(|cursor| encode_token(&listing, cursor)).transpose()?;
            Ok(Json(OrderList { items: page.orders, next_page_token }))
        }
    }
}

async fn change(
    state: &AppState,
    actor: &ordexa_store::Actor,
    id: &str,
    change: OrderChange,
    if_match: Option<i64>,
    traceparent: &str,
) -> Result<Response, ApiError> {
    let id = parse_order_id(id)?;
    let order = state.store.change_order(id, actor, change, if_match, traceparent).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Change a PENDING order's items and/or shipping address.
#[utoipa::path(patch, path = "/api/v1/orders/{id}", tag = "orders", request_body = UpdateOrderRequest,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, description = "Not PENDING", body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    TraceParent(traceparent): TraceParent,
    body: JsonBody<UpdateOrderRequest>,
) -> Result<Response, ApiError> {
    let UpdateOrderRequest { items, shipping_address } = body.value;
    if items.is_none() && shipping_address.is_none() {
        return Err(ApiError::field("/", "give items, shipping_address or both"));
    }
    change(&state, &actor, &id, OrderChange::Revise { items, shipping_address }, if_match, &traceparent).await
}

/// Cancel an order (its owner or an admin), while PENDING or CONFIRMED.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    TraceParent(traceparent): TraceParent,
) -> Result<Response, ApiError> {
    change(&state, &actor, &id, OrderChange::Transition(Transition::Cancel), if_match, &traceparent).await
}

async fn fulfil(
    state: AppState,
    caller: Caller,
    id: String,
    if_match: Option<i64>,
    traceparent: String,
    transition: Transition,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    change(&state, &caller.0, &id, OrderChange::Transition(transition), if_match, &traceparent).await
}

/// Confirm a PENDING order (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/confirm", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Confirm).await
}

/// Ship a CONFIRMED order (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn ship_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Ship).await
}

/// Mark a SHIPPED order delivered (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn deliver_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Deliver).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_round_trips_only_within_its_listing() -> Result<(), ApiError> {
        let cursor = UserCursor { created_ms: chrono::Utc::now().timestamp_millis(), order_id: Uuid::now_v7() };
        let token = encode_token("user:alice", cursor)?;
        assert_eq!(decode_token::<UserCursor>("user:alice", &token)?, cursor);
        assert!(matches!(decode_token::<UserCursor>("user:bob", &token), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode_token::<UserCursor>("user:alice", "not-a-token"), Err(ApiError::BadRequest(_))));
        // A user token is no status token, even when someone edits its listing.
        assert!(matches!(decode_token::<StatusCursor>("user:alice", &token), Err(ApiError::BadRequest(_))));
        Ok(())
    }
}
