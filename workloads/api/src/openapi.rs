//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types' schemas.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{orders, products};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ordexa API", description = "Orders and catalog of the Ordexa ordering system. Errors are RFC 9457 problem details."),
    paths(
        products::list_products, products::create_product, products::update_product,
        orders::create_order, orders::get_order, orders::list_orders, orders::update_order,
        orders::cancel_order, orders::confirm_order, orders::ship_order, orders::deliver_order,
    ),
    modifiers(&BearerAuth),
    tags((name = "orders"), (name = "fulfilment", description = "Staff (admin role) actions"), (name = "catalog"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
