//! The OpenAPI 3.1 document, generated from `ROUTES`: the table of every operation the
//! router serves. A test walks the table against the real router, so the document cannot
//! name a path the server does not answer.

use serde_json::{json, Map, Value};

/// One operation: method, path under `/api/v1`, summary, request body schema (if any).
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<&'static str>,
}

const fn r(method: &'static str, path: &'static str, summary: &'static str, body: Option<&'static str>) -> Route {
    Route { method, path, summary, body }
}

/// Every operation under `/api/v1`.
pub const ROUTES: &[Route] = &[
    r("post", "/warehouses", "Create a warehouse", Some("Warehouse")),
    r("get", "/warehouses", "List warehouses", None),
    r("get", "/warehouses/{code}", "Get a warehouse", None),
    r("post", "/items", "Create an item", Some("Item")),
    r("get", "/items", "List items", None),
    r("get", "/items/{sku}", "Get an item", None),
    r("patch", "/items/{sku}", "Change an item's settings", Some("ItemPatch")),
    r("get", "/items/{sku}/components", "Get an item's bill of materials", None),
    r("put", "/items/{sku}/components", "Replace an item's bill of materials", Some("Components")),
    r("get", "/items/{sku}/stock", "Stock per warehouse, available and capacity", None),
    r("post", "/stock/adjustments", "Adjust stock by a delta or to a counted figure", Some("Adjustment")),
    r("post", "/stores", "Connect a store", Some("Store")),
    r("get", "/stores", "List stores", None),
    r("get", "/stores/{code}", "Get a store", None),
    r("patch", "/stores/{code}", "Change a store", Some("StorePatch")),
    r("post", "/listings", "Map a store's listing to an item", Some("Listing")),
    r("get", "/listings", "List listings (filter by store, sku)", None),
    r("post", "/listings/bulk", "Create many listings, all or nothing", Some("Listings")),
    r("get", "/listings/{id}", "Get a listing with its published quantity", None),
    r("get", "/listings/{id}/explain", "Every step that decided a listing's published quantity", None),
    r("post", "/rules", "Create a sync rule", Some("Rule")),
    r("get", "/rules", "List sync rules", None),
    r("get", "/rules/{id}", "Get a sync rule", None),
    r("put", "/rules/{id}", "Save a new version of a sync rule", Some("Rule")),
    r("delete", "/rules/{id}", "Delete a sync rule", None),
    r("post", "/orders", "Take in an order and decide it", Some("Order")),
    r("get", "/orders", "List orders (filter by status, store)", None),
    r("get", "/orders/{id}", "Get an order", None),
    r("post", "/orders/{id}/accept", "Accept an order request", None),
    r("post", "/orders/{id}/decline", "Decline an order request", None),
    r("post", "/orders/{id}/pay", "Record payment of an accepted request", None),
    r("post", "/orders/{id}/fulfill", "Ship an order", None),
    r("post", "/orders/{id}/cancel", "Cancel an order, releasing what it holds", None),
    r("post", "/production-cards", "Create a production card (make to stock)", Some("Card")),
    r("get", "/production-cards", "List production cards", None),
    r("get", "/production-cards/{id}", "Get a production card", None),
    r("post", "/production-cards/{id}/start", "Start a production card", None),
    r("post", "/production-cards/{id}/done", "Finish a production card", None),
    r("post", "/production-cards/{id}/cancel", "Cancel a production card", None),
    r("post", "/sync", "Sync now: queue a full push for one store or all", Some("Sync")),
    r("get", "/sync-records", "List sync records (filter by store, sku, result, since, until)", None),
    r("get", "/settings", "Workspace settings", None),
    r("put", "/settings", "Switch sync on or off for the workspace", Some("Settings")),
    r("get", "/openapi.json", "This document", None),
];

/// The document served at `/api/v1/openapi.json`.
pub fn openapi() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": route.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "201": {"description": "Created", "content": {"application/json": {}}},
                "default": {"description": "A problem (RFC 9457)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        });
        if let Some(schema) = route.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let entry = paths.entry(format!("/api/v1{}", route.path)).or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    // Outside `/api/v1` and without a token: the channel's signature is the credential.
    paths.insert(
        "/webhooks/{channel}/{store}".into(),
        json!({"post": {
            "summary": "Take a channel's webhook delivery (signed by the channel; kept raw in the inbox, then applied)",
            "security": [],
            "parameters": [
                {"name": "channel", "in": "path", "required": true, "schema": {"enum": ["shopify", "woocommerce", "etsy", "amazon", "ebay", "webhook"]}},
                {"name": "store", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The store's code, unique across workspaces for webhook routing"},
            ],
            "requestBody": {"required": true, "content": {"application/json": {}}},
            "responses": {
                "200": {"description": "Kept and applied, or nothing to do (duplicate, ignored)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}}},
                "202": {"description": "Kept, but it could not be parsed or applied (outcome failed); stockpool inbox replay applies it later", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}}},
                "default": {"description": "A problem (RFC 9457): 401 bad signature, 404 unknown store, 409 ambiguous store code, 413 body too large", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        }}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "stockpool", "version": env!("CARGO_PKG_VERSION"), "description": "One shared stock pool for every sales channel."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

fn schemas() -> Value {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer"});
    let b = json!({"type": "boolean"});
    json!({
        "Problem": obj(&["title", "status", "detail"], json!({"type": s, "title": s, "status": i, "detail": s})),
        "Warehouse": obj(&["code", "name"], json!({"code": s, "name": s})),
        "Item": obj(&["sku"], json!({"sku": s, "name": s, "kind": {"enum": ["product", "material", "bundle"]}, "unit": s,
            "status": {"enum": ["active", "draft"]}, "stock_plus_capacity": b, "make_action": {"enum": ["deduct", "production_card"]},
            "zero_policy": {"enum": ["stop", "continue", "backorder", "request"]}, "continue_quantity": i, "accept_within_seconds": i})),
        "ItemPatch": obj(&[], json!({"name": s, "unit": s, "status": {"enum": ["active", "draft"]}, "stock_plus_capacity": b,
            "make_action": {"enum": ["deduct", "production_card"]}, "zero_policy": {"enum": ["stop", "continue", "backorder", "request"]},
            "continue_quantity": i, "accept_within_seconds": i})),
        "Components": obj(&["components"], json!({"components": {"type": "array", "items": obj(&["sku", "quantity"], json!({"sku": s, "quantity": i}))}})),
        "Adjustment": obj(&["sku", "warehouse"], json!({"sku": s, "warehouse": s, "delta": i, "set": i, "reason": s})),
        "Store": obj(&["code", "name", "channel"], json!({"code": s, "name": s,
            "channel": {"enum": ["shopify", "woocommerce", "etsy", "amazon", "ebay", "webhook", "manual"]},
            "schedule": {"oneOf": [{"const": "realtime"}, obj(&["every_minutes"], json!({"every_minutes": i}))]},
            "url": s, "secret": s, "credentials": {"type": "object"}, "base_url": s, "enabled": b, "paused": b,
            "push_rate_per_second": {"type": "integer", "minimum": 1, "maximum": 1000},
            "poll_every_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
            "reconcile_every_minutes": {"type": "integer", "minimum": 1, "maximum": 10080}})),
        "StorePatch": obj(&[], json!({"name": s, "schedule": {}, "url": s, "secret": s, "credentials": {"type": "object"}, "base_url": s, "enabled": b, "paused": b,
            "push_rate_per_second": {"type": "integer", "minimum": 1, "maximum": 1000},
            "poll_every_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
            "reconcile_every_minutes": {"type": "integer", "minimum": 1, "maximum": 10080}})),
        "Listing": obj(&["store", "external_id", "sku"], json!({"store": s, "external_id": s, "store_sku": s, "sku": s, "status": {"enum": ["active", "draft"]}})),
        "Listings": obj(&["listings"], json!({"listings": {"type": "array", "items": {"$ref": "#/components/schemas/Listing"}}})),
        "Rule": obj(&["name", "warehouses", "stores"], json!({"name": s, "priority": i, "enabled": b,
            "items": {"oneOf": [{"const": "all"}, obj(&["skus"], json!({"skus": {"type": "array", "items": s}})), obj(&["prefix"], json!({"prefix": s}))]},
            "warehouses": {"type": "array", "items": s}, "stores": {"type": "array", "items": s},
            "sync_rate_percent": {"type": "integer", "minimum": 1, "maximum": 100}, "stock_threshold": i,
            "priority_store": {"type": ["string", "null"]}, "safety_stock": {"type": ["integer", "null"]}})),
        "Order": obj(&["store", "external_id", "lines"], json!({"store": s, "external_id": s,
            "lines": {"type": "array", "items": obj(&["quantity"], json!({"store_sku": s, "external_id": s, "quantity": i}))},
            "payment": {"enum": ["immediate", "after_acceptance"]}, "pay_within_seconds": i})),
        "Card": obj(&["sku", "warehouse", "quantity"], json!({"sku": s, "warehouse": s, "quantity": i})),
        "Sync": obj(&[], json!({"store": s})),
        "Settings": obj(&["sync_enabled"], json!({"sync_enabled": b})),
        "Delivery": obj(&["delivery", "outcome"], json!({"delivery": i,
            "outcome": {"enum": ["applied", "duplicate", "ignored", "failed", "pending"]},
            "detail": {"type": ["string", "null"]}, "order": {"type": ["string", "null"]}, "seen_before": b})),
    })
}
