//! Catalog endpoints: everyone lists products; admins create and change them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ordexa_domain::{Product, ProductInput};

use crate::AppState;
use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::problem::{ApiError, Problem};

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProductList {
    pub items: Vec<Product>,
}

/// The catalog, active and inactive products (inactive ones cannot be ordered).
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog",
    responses((status = 200, body = ProductList), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list_products(State(state): State<AppState>, _caller: Caller) -> Result<Json<ProductList>, ApiError> {
    Ok(Json(ProductList { items: state.store.list_products().await? }))
}

/// Add a product (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = ProductInput,
    responses((status = 201, body = Product), (status = 403, body = Problem), (status = 409, description = "The sku exists", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ProductInput>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    caller.require_admin()?;
    let product = body.value.validate()?;
    state.store.create_product(&product).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Replace a product's name, price, currency and active flag (admin).
#[utoipa::path(put, path = "/api/v1/products/{sku}", tag = "catalog", request_body = ProductInput,
    params(("sku" = String, Path)),
    responses((status = 200, body = Product), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    body: JsonBody<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    caller.require_admin()?;
    if body.value.sku != sku {
        return Err(ApiError::field("/sku", format!("must equal the sku in the path ({sku})")));
    }
    let product = body.value.validate()?;
    state.store.update_product(&product).await?;
    Ok(Json(product))
}
