//! Catalog endpoints: everyone lists products; admins create and change them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordexa_domain::{DomainError, FieldError, PRODUCT_NAME_MAX_CHARS, Product, ProductInput};

use crate::AppState;
use crate::auth::Caller;
use crate::extract::{JsonBody, SkuPath};
use crate::problem::{ApiError, Problem};

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProductList {
    pub items: Vec<Product>,
}

/// The catalog, active and inactive products (inactive ones cannot be ordered).
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog",
    responses((status = 200, body = ProductList)), security(("bearer" = [])))]
pub async fn list_products(State(state): State<AppState>, _caller: Caller) -> Result<Json<ProductList>, ApiError> {
    Ok(Json(ProductList { items: state.store.list_products().await? }))
}

/// Add a product (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = ProductInput,
    responses((status = 201, body = Product), (status = 403, description = "Needs the admin role", body = Problem),
        (status = 409, description = "The sku exists", body = Problem),
        (status = 422, description = "`validation`: a field breaks a rule stated here", body = Problem)),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ProductInput>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    caller.require_admin()?;
    let product = validate(body.value)?;
    state.store.create_product(&product).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Replace a product's name, price, currency and active flag (admin).
#[utoipa::path(put, path = "/api/v1/products/{sku}", tag = "catalog", request_body = ProductInput,
    params(("sku" = String, Path)),
    responses((status = 200, body = Product), (status = 403, description = "Needs the admin role", body = Problem),
        (status = 404, body = Problem),
        (status = 422, description = "`validation`: a field breaks a rule stated here; `sku-mismatch`: the body's sku is not the path's", body = Problem)),
    security(("bearer" = [])))]
pub async fn update_product(
    State(state): State<AppState>,
    caller: Caller,
    SkuPath(sku): SkuPath,
    body: JsonBody<ProductInput>,
) -> Result<Json<Product>, ApiError> {
    caller.require_admin()?;
    let product = validate(body.value)?;
    if product.sku.as_str() != sku {
        let message = format!("must equal the sku in the path ({sku})");
        return Err(ApiError::Refused {
            slug: "sku-mismatch",
            detail: format!("/sku: {message}"),
            errors: vec![FieldError::new("/sku", message)],
        });
    }
    state.store.update_product(&product).await?;
    Ok(Json(product))
}

/// The domain's check, plus the name as sent: the domain trims the name before it counts its
/// characters and looks for control characters, but the document states those rules of the
/// value sent (a trailing newline is a control character, not whitespace to drop).
fn validate(input: ProductInput) -> Result<Product, ApiError> {
    let name_error = if input.name.chars().count() > PRODUCT_NAME_MAX_CHARS {
        Some(FieldError::new("/name", format!("must be at most {PRODUCT_NAME_MAX_CHARS} characters")))
    } else if input.name.chars().any(char::is_control) {
        Some(FieldError::new("/name", "must not contain control characters"))
    } else {
        None
    };
    match (input.validate(), name_error) {
        (Ok(product), None) => Ok(product),
        (Ok(_), Some(error)) => Err(DomainError::Validation(vec![error]).into()),
        (Err(DomainError::Validation(mut errors)), Some(error)) => {
            if !errors.iter().any(|e| e.field == "/name") {
                errors.push(error);
            }
            Err(DomainError::Validation(errors).into())
        }
        (Err(other), _) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> ProductInput {
        ProductInput {
            sku: "MUG-1".to_owned(),
            name: name.to_owned(),
            unit_price: 100,
            currency: "EUR".to_owned(),
            active: None,
        }
    }

    fn name_refused(name: &str) -> bool {
        matches!(validate(input(name)), Err(ApiError::Unprocessable { errors, .. }) if errors.iter().any(|e| e.field == "/name"))
    }

    #[test]
    fn a_name_is_checked_as_sent_not_as_trimmed() {
        assert!(validate(input(" Mug ")).is_ok());
        assert!(name_refused("Mug\n"), "a trailing newline is a control character");
        assert!(name_refused(&format!(" {} ", "x".repeat(PRODUCT_NAME_MAX_CHARS))), "201 characters as sent");
        assert!(name_refused("   "));
        assert!(validate(input(&"x".repeat(PRODUCT_NAME_MAX_CHARS))).is_ok());
    }
}
