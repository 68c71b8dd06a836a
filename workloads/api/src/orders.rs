//! Order endpoints: thin handlers that extract, call the write model and map the result.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ordexa_domain::{ItemRequest, Order, OrderId, OrderStatus, ShippingAddress, Transition};
use ordexa_store::{CreateOrder, CreateOutcome, IdempotencyKey, OrderChange, OrderPage, PageCursor};
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
    /// Wait briefly until the order has reached at least this version.
    pub min_version: Option<i64>,
}

/// What a page token encodes: which listing it continues, and where.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct PageToken {
    /// `user:<id>` or `status:<STATUS>`; a token is refused by any other listing.
    listing: String,
    after: PageCursor,
}

fn encode_token(listing: &str, cursor: PageCursor) -> Result<String, ApiError> {
    let json = serde_json::to_vec(&PageToken { listing: listing.to_owned(), after: cursor })
        .map_err(|e| ApiError::Internal(format!("page token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_token(listing: &str, token: &str) -> Result<PageCursor, ApiError> {
    let invalid = || ApiError::BadRequest("page_token is not a token this listing returned".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: PageToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
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
    // Reads come from the write model until the read side lands, so every committed version
    // is already visible: min_version never has to wait here.
    let order = state.store.get_order(id, &actor).await?;
    Ok(order_response(StatusCode::OK, &order))
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
    let (listing, page): (String, OrderPage) = match params.status {
        Some(raw) => {
            if !actor.is_admin {
                return Err(ApiError::Forbidden("listing by status needs the admin role".to_owned()));
            }
            let status: OrderStatus =
                raw.parse().map_err(|e: ordexa_domain::ParseStatusError| ApiError::field("/status", e.to_string()))?;
            let listing = format!("status:{}", status.as_str());
            let after = params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            (listing, state.store.list_orders_by_status(status, limit, after).await?)
        }
        None => {
            let listing = format!("user:{}", actor.user_id);
            let after = params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            (listing.clone(), state.store.list_orders_of_user(&actor.user_id, limit, after).await?)
        }
    };
    let next_page_token = page.next.map(|cursor| encode_token(&listing, cursor)).transpose()?;
    Ok(Json(OrderList { items: page.orders, next_page_token }))
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
        let cursor = PageCursor { created_at: chrono::Utc::now(), id: Uuid::now_v7() };
        let token = encode_token("user:alice", cursor)?;
        assert_eq!(decode_token("user:alice", &token)?, cursor);
        assert!(matches!(decode_token("user:bob", &token), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode_token("user:alice", "not-a-token"), Err(ApiError::BadRequest(_))));
        Ok(())
    }
}
