//! The product catalog: admins create and change products; orders are priced from it inside
//! the command's transaction.

use std::collections::HashMap;

use ordexa_domain::{Currency, Product, Sku};
use sqlx::{PgConnection, Row};

use crate::{Result, Store, StoreError};

/// The development catalog `ordexa migrate --seed-dev` loads: (sku, name, unit price in cents).
pub const DEV_CATALOG: &[(&str, &str, i64)] = &[
    ("COFFEE-BEANS-1KG", "Coffee beans, 1 kg", 2_450),
    ("FRENCH-PRESS", "French press, 1 l", 3_990),
    ("MUG-CERAMIC", "Ceramic mug", 1_200),
    ("GRINDER-HAND", "Hand grinder", 5_900),
    ("FILTER-PAPERS-100", "Filter papers, 100 pieces", 450),
];

fn product_from_row(row: &sqlx::postgres::PgRow) -> Result<Product> {
    let sku: String = row.try_get("sku")?;
    let currency: String = row.try_get("currency")?;
    Ok(Product {
        sku: Sku::parse(&sku).map_err(|e| StoreError::CorruptRow(format!("product sku {sku:?}: {e}")))?,
        name: row.try_get("name")?,
        unit_price: row.try_get("unit_price")?,
        currency: Currency::parse(&currency)
            .map_err(|e| StoreError::CorruptRow(format!("product {sku} currency {currency:?}: {e}")))?,
        active: row.try_get("active")?,
    })
}

/// The products named by `skus`, read in the caller's transaction.
pub(crate) async fn products_by_sku(conn: &mut PgConnection, skus: &[String]) -> Result<HashMap<Sku, Product>> {
    let rows = sqlx::query("SELECT sku, name, unit_price, currency, active FROM products WHERE sku = ANY($1)")
        .bind(skus)
        .fetch_all(conn)
        .await?;
    rows.iter().map(|row| product_from_row(row).map(|p| (p.sku.clone(), p))).collect()
}

impl Store {
    /// Every product, active or not, by sku.
    pub async fn list_products(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query("SELECT sku, name, unit_price, currency, active FROM products ORDER BY sku")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// Runs `sql` with the product's fields as $1 (sku) to $5 (active); returns rows affected.
    async fn write_product(&self, sql: &'static str, product: &Product) -> Result<u64> {
        Ok(sqlx::query(sql)
            .bind(product.sku.as_str())
            .bind(&product.name)
            .bind(product.unit_price)
            .bind(product.currency.as_str())
            .bind(product.active)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Adds a product; an existing sku is refused.
    pub async fn create_product(&self, product: &Product) -> Result<()> {
        let inserted = self
            .write_product(
                "INSERT INTO products (sku, name, unit_price, currency, active) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sku) DO NOTHING",
                product,
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::ProductExists(product.sku.clone()));
        }
        Ok(())
    }

    /// Replaces an existing product's fields. Orders already placed keep the price they were
    /// placed with: their items carry a copy.
    pub async fn update_product(&self, product: &Product) -> Result<()> {
        let updated = self
            .write_product(
                "UPDATE products SET name = $2, unit_price = $3, currency = $4, active = $5, updated_at = now() \
                 WHERE sku = $1",
                product,
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::ProductNotFound(product.sku.clone()));
        }
        Ok(())
    }

    /// Loads [`DEV_CATALOG`]; existing products are left as they are. Returns how many were added.
    pub async fn seed_dev_catalog(&self) -> Result<u64> {
        let mut added = 0;
        for (sku, name, price) in DEV_CATALOG {
            added += sqlx::query(
                "INSERT INTO products (sku, name, unit_price, currency) VALUES ($1, $2, $3, 'EUR') \
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(sku)
            .bind(name)
            .bind(price)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(added)
    }
}
