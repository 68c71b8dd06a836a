//! Order endpoints: thin handlers that extract, call the write model (commands) or the read
//! model (reads and lists), and map the result.

use axum::Json;
use axum::extract::State;
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
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{IdempotencyKeyHeader, IfMatch, JsonBody, OrderIdPath, QueryParams, TraceParent};
use crate::problem::{ApiError, Problem};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;
/// The highest `min_version` accepted: far above any version an order reaches (one per change).
pub const MAX_MIN_VERSION: i64 = i32::MAX as i64;
/// The longest page token; the tokens this API issues are at most about 200 characters.
pub const MAX_PAGE_TOKEN_LEN: usize = 512;

/// Place an order: skus and quantities; prices come from the catalog.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<ItemRequest>,
    pub shipping_address: ShippingAddress,
}

/// Change a PENDING order's items and/or shipping address (at least one of them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrderRequest {
    /// The new items, replacing all of the order's items.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<ItemRequest>)]
    pub items: Option<Vec<ItemRequest>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = ShippingAddress)]
    pub shipping_address: Option<ShippingAddress>,
}

/// A field that may be left out but, when given, must not be `null`: `Some` of the value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<T>, D::Error> {
    T::deserialize(de).map(Some)
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
    /// Page size (default 20).
    pub limit: Option<u32>,
    /// The `next_page_token` of the previous page of the same listing.
    pub page_token: Option<String>,
    /// Admins only: list every order in this status instead of the caller's own.
    pub status: Option<OrderStatus>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Wait briefly until the order has reached at least this version (the read model is
    /// updated asynchronously); answers 503 `projection-behind` if it does not in time, and 409
    /// `version-ahead` at once if the order has not reached it.
    pub min_version: Option<i64>,
}

/// What a page token encodes: which listing it continues (a digest, so a token never carries
/// a user id and stays short), and where.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct PageToken<C> {
    /// The first 12 bytes of SHA-256 of `user:<id>` or `status:<STATUS>`; a token is refused by
    /// any other listing.
    #[serde(rename = "l")]
    listing: String,
    #[serde(rename = "a")]
    after: C,
}

fn listing_digest(listing: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(listing.as_bytes())[..12])
}

fn encode_token<C: Serialize>(listing: &str, cursor: C) -> Result<String, ApiError> {
    let json = serde_json::to_vec(&PageToken { listing: listing_digest(listing), after: cursor })
        .map_err(|e| ApiError::Internal(format!("page token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The cursor of a token `listing` issued. A token of the documented form (base64url, at most
/// [`MAX_PAGE_TOKEN_LEN`]) that this listing did not issue is refused as `invalid-page-token`.
fn decode_token<C: DeserializeOwned>(listing: &str, token: &str) -> Result<C, ApiError> {
    if token.is_empty()
        || token.len() > MAX_PAGE_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::field(
            "/page_token",
            format!("must be 1 to {MAX_PAGE_TOKEN_LEN} characters of A-Z, a-z, 0-9, '-' and '_'"),
        ));
    }
    let invalid = || ApiError::refused("invalid-page-token", "page_token is not a token this listing returned");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: PageToken<C> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.listing != listing_digest(listing) {
        return Err(invalid());
    }
    Ok(token.after)
}

/// Checks items and address against every rule the document states, before the write model
/// (and its 404, 409 and 412) sees the request: a request breaking a stated rule is refused as
/// such (422) whatever state the order is in. The domain's own checks decide: the items are
/// priced against an empty catalog, which finds every problem of their form first.
fn check_form(items: Option<&[ItemRequest]>, address: Option<&ShippingAddress>) -> Result<(), ApiError> {
    if let Some(items) = items {
        refuse_repeated_skus(items)?;
    }
    let mut errors = address.map(|a| a.validate("/shipping_address")).unwrap_or_default();
    if let Some(items) = items
        && let Err(ordexa_domain::DomainError::Validation(mut item_errors)) =
            ordexa_domain::price_items(items, &std::collections::HashMap::new())
    {
        errors.append(&mut item_errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(ordexa_domain::DomainError::Validation(errors).into()) }
}

/// Refuses an order whose lines repeat an sku before the write model sees it, as its own kind
/// of refusal: the document cannot state "skus are distinct", so this is not `validation`.
fn refuse_repeated_skus(items: &[ItemRequest]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashMap::new();
    for (index, item) in items.iter().enumerate() {
        if ordexa_domain::Sku::parse(&item.sku).is_err() {
            continue;
        }
        if let Some(first) = seen.insert(item.sku.as_str(), index) {
            let field = format!("/items/{index}/sku");
            let message = format!("repeats sku {} of /items/{first}; put the whole quantity on one line", item.sku);
            return Err(ApiError::Refused {
                slug: "duplicate-sku",
                detail: format!("{field}: {message}"),
                errors: vec![ordexa_domain::FieldError::new(field, message)],
            });
        }
    }
    Ok(())
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
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key returns the first response (keys are kept for a day by default)")),
    responses(
        (status = 201, description = "Created", body = Order, headers(("Location" = String), ("ETag" = String))),
        (status = 422, description = "`validation`: a field breaks a rule stated here; `unknown-sku`, `inactive-sku`, `mixed-currencies`, `duplicate-sku`: the catalog refuses the items; `idempotency-key-reused`: the key came with another body", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    TraceParent(traceparent): TraceParent,
    body: JsonBody<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    check_form(Some(&body.value.items), Some(&body.value.shipping_address))?;
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
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 404, body = Problem),
        (status = 409, description = "`version-ahead`: the order has not reached `min_version`", body = Problem),
        (status = 503, description = "`read-model-unavailable`: orders cannot be read right now (placing and changing them still works); `projection-behind`: the version asked for did not reach the read model in time; also `overloaded`, `timeout`, `unavailable`", body = Problem)),
    security(("bearer" = [])))]
pub async fn get_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    OrderIdPath(id): OrderIdPath,
    QueryParams(params): QueryParams<GetParams>,
) -> Result<Response, ApiError> {
    if let Some(v) = params.min_version
        && !(1..=MAX_MIN_VERSION).contains(&v)
    {
        return Err(ApiError::field("/min_version", format!("must be between 1 and {MAX_MIN_VERSION}")));
    }
    let order = read_order(&state, &actor, id, params.min_version.unwrap_or(1)).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Reads an order from the read model at version `want` or later. When the read model lacks
/// it (or has an older version), the write model decides at once: unknown (or someone else's)
/// is a 404, a version the order never reached is a 409 `version-ahead`; only a version that
/// is committed but not projected yet is waited for (at most `state.read_wait`), so following a
/// create's `Location` right away never answers 404 and no request polls for a version that
/// will not come. A read model that fails is a 503 at once, not after the wait.
async fn read_order(state: &AppState, actor: &ordexa_store::Actor, id: OrderId, want: i64) -> Result<Order, ApiError> {
    let reads = state.reads.model()?;
    let visible = |order: Option<Order>| order.filter(|o| actor.may_access(o) && o.version >= want);
    if let Some(order) = visible(reads.get(id).await?) {
        return Ok(order);
    }
    let committed = state.store.get_order(id, actor).await?;
    if committed.version < want {
        return Err(ApiError::VersionAhead(format!(
            "order {id} is at version {}; version {want} does not exist yet",
            committed.version
        )));
    }
    let deadline = tokio::time::Instant::now() + state.read_wait;
    let mut pause = std::time::Duration::from_millis(5);
    while tokio::time::Instant::now() + pause <= deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
        if let Some(order) = visible(reads.get(id).await?) {
            return Ok(order);
        }
    }
    metrics::counter!("ordexa_api_read_wait_timeouts_total").increment(1);
    Err(ApiError::ProjectionBehind(format!(
        "order {id} is at version {} in the write model; version {want} did not reach the read model within {} ms",
        committed.version,
        state.read_wait.as_millis()
    )))
}

/// List the caller's orders, newest first; admins may list every order in one status.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(ListParams),
    responses((status = 200, body = OrderList),
        (status = 403, description = "Listing by status needs the admin role", body = Problem),
        (status = 422, description = "`validation`: a parameter breaks a rule stated here; `invalid-page-token`: the token was not issued by this listing", body = Problem),
        (status = 503, description = "`read-model-unavailable`: orders cannot be read right now (placing and changing them still works); also `overloaded`, `timeout`", body = Problem)),
    security(("bearer" = [])))]
pub async fn list_orders(
    State(state): State<AppState>,
    Caller(actor): Caller,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<OrderList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::field("/limit", format!("must be between 1 and {MAX_PAGE_SIZE}, got {limit}")));
    }
    match params.status {
        Some(status) => {
            if !actor.is_admin {
                return Err(ApiError::Forbidden("listing by status needs the admin role".to_owned()));
            }
            let listing = format!("status:{}", status.as_str());
            let after: Option<StatusCursor> =
                params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            let page = state.reads.model()?.list_by_status(status, limit, after).await?;
            let next_page_token = page.next.map(|cursor| encode_token(&listing, cursor)).transpose()?;
            Ok(Json(OrderList { items: page.orders, next_page_token }))
        }
        None => {
            let listing = format!("user:{}", actor.user_id);
            let after: Option<UserCursor> =
                params.page_token.as_deref().map(|t| decode_token(&listing, t)).transpose()?;
            let page = state.reads.model()?.list_by_user(&actor.user_id, limit, after).await?;
            let next_page_token = page.next.map(|cursor| encode_token(&listing, cursor)).transpose()?;
            Ok(Json(OrderList { items: page.orders, next_page_token }))
        }
    }
}

async fn change(
    state: &AppState,
    actor: &ordexa_store::Actor,
    id: OrderId,
    change: OrderChange,
    if_match: IfMatch,
    traceparent: &str,
) -> Result<Response, ApiError> {
    let expected_version = if_match.expected_version()?;
    let order = state.store.change_order(id, actor, change, expected_version, traceparent).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Change a PENDING order's items and/or shipping address.
#[utoipa::path(patch, path = "/api/v1/orders/{id}", tag = "orders", request_body = UpdateOrderRequest,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 404, body = Problem),
        (status = 409, description = "Not PENDING", body = Problem),
        (status = 412, description = "The order has changed since the ETag in If-Match (or the ETag is weak)", body = Problem),
        (status = 422, description = "`validation`: a field breaks a rule stated here; `unknown-sku`, `inactive-sku`, `mixed-currencies`, `duplicate-sku`: the catalog refuses the items", body = Problem)),
    security(("bearer" = [])))]
pub async fn update_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    OrderIdPath(id): OrderIdPath,
    if_match: IfMatch,
    TraceParent(traceparent): TraceParent,
    body: JsonBody<UpdateOrderRequest>,
) -> Result<Response, ApiError> {
    let UpdateOrderRequest { items, shipping_address } = body.value;
    if items.is_none() && shipping_address.is_none() {
        return Err(ApiError::field("/", "give items, shipping_address or both"));
    }
    check_form(items.as_deref(), shipping_address.as_ref())?;
    change(&state, &actor, id, OrderChange::Revise { items, shipping_address }, if_match, &traceparent).await
}

/// Cancel an order (its owner or an admin), while PENDING or CONFIRMED.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 404, body = Problem),
        (status = 409, description = "Neither PENDING nor CONFIRMED", body = Problem),
        (status = 412, description = "The order has changed since the ETag in If-Match (or the ETag is weak)", body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel_order(
    State(state): State<AppState>,
    Caller(actor): Caller,
    OrderIdPath(id): OrderIdPath,
    if_match: IfMatch,
    TraceParent(traceparent): TraceParent,
) -> Result<Response, ApiError> {
    change(&state, &actor, id, OrderChange::Transition(Transition::Cancel), if_match, &traceparent).await
}

async fn fulfil(
    state: AppState,
    caller: Caller,
    id: OrderId,
    if_match: IfMatch,
    traceparent: String,
    transition: Transition,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    change(&state, &caller.0, id, OrderChange::Transition(transition), if_match, &traceparent).await
}

/// Confirm a PENDING order (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/confirm", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 403, description = "Needs the admin role", body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Not PENDING", body = Problem),
        (status = 412, description = "The order has changed since the ETag in If-Match (or the ETag is weak)", body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    if_match: IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Confirm).await
}

/// Ship a CONFIRMED order (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 403, description = "Needs the admin role", body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Not CONFIRMED", body = Problem),
        (status = 412, description = "The order has changed since the ETag in If-Match (or the ETag is weak)", body = Problem)),
    security(("bearer" = [])))]
pub async fn ship_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    if_match: IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Ship).await
}

/// Mark a SHIPPED order delivered (admin).
#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver", tag = "fulfilment",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag last seen")),
    responses((status = 200, body = Order, headers(("ETag" = String))), (status = 403, description = "Needs the admin role", body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Not SHIPPED", body = Problem),
        (status = 412, description = "The order has changed since the ETag in If-Match (or the ETag is weak)", body = Problem)),
    security(("bearer" = [])))]
pub async fn deliver_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    if_match: IfMatch,
    TraceParent(tp): TraceParent,
) -> Result<Response, ApiError> {
    fulfil(state, caller, id, if_match, tp, Transition::Deliver).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_round_trips_only_within_its_listing() -> Result<(), ApiError> {
        let cursor = UserCursor { created_ms: chrono::Utc::now().timestamp_millis(), order_id: uuid::Uuid::now_v7() };
        let token = encode_token("user:alice", cursor)?;
        assert_eq!(decode_token::<UserCursor>("user:alice", &token)?, cursor);
        fn refused<C>(r: Result<C, ApiError>) -> bool {
            matches!(r, Err(ApiError::Refused { slug: "invalid-page-token", .. }))
        }
        assert!(refused(decode_token::<UserCursor>("user:bob", &token)));
        assert!(refused(decode_token::<UserCursor>("user:alice", "not-a-token")));
        // A user token is no status token, even when someone edits its listing.
        assert!(refused(decode_token::<StatusCursor>("user:alice", &token)));
        // Outside the documented form it is a validation error of the parameter.
        assert!(matches!(decode_token::<UserCursor>("user:alice", "a+b"), Err(ApiError::Unprocessable { .. })));
        assert!(matches!(decode_token::<UserCursor>("user:alice", ""), Err(ApiError::Unprocessable { .. })));
        Ok(())
    }

    #[test]
    fn a_page_token_stays_short_whatever_the_user_id() -> Result<(), ApiError> {
        let cursor = StatusCursor {
            bucket_ms: i64::MIN,
            after: Some(UserCursor { created_ms: i64::MIN, order_id: uuid::Uuid::now_v7() }),
        };
        let token = encode_token(&format!("status:{}", "x".repeat(10_000)), cursor)?;
        assert!(token.len() <= MAX_PAGE_TOKEN_LEN / 2, "{} characters", token.len());
        let long_user = encode_token(&format!("user:{}", "u".repeat(10_000)), cursor.after)?;
        assert!(long_user.len() <= MAX_PAGE_TOKEN_LEN / 2, "{} characters", long_user.len());
        Ok(())
    }

    #[test]
    fn repeated_skus_are_refused_as_their_own_kind() {
        let item = |sku: &str| ItemRequest { sku: sku.to_owned(), quantity: 1 };
        assert!(refuse_repeated_skus(&[item("A"), item("B")]).is_ok());
        match refuse_repeated_skus(&[item("A"), item("B"), item("A")]) {
            Err(ApiError::Refused { slug: "duplicate-sku", errors, .. }) => assert_eq!(errors[0].field, "/items/2/sku"),
            other => panic!("expected duplicate-sku, got {other:?}"),
        }
        // Invalid skus are the validation's business, repeated or not.
        assert!(refuse_repeated_skus(&[item("a b"), item("a b")]).is_ok());
    }
}
