//! OpenAPI 3 import and export of one group's APIs, so a backend team can keep
//! its API description where it already is.
//!
//! Export: one path item per API (`${id}` becomes `{id}`), `operationId` and
//! `x-atoll-operation-type` carry the operation type, the request and response
//! schemas go in `requestBody` and the `200` response, and the gateway settings
//! (timeouts, limits, cache, mock, authorizer, enabled) in `x-atoll`. Import
//! reads the same shape: the operation type from `x-atoll-operation-type` or
//! `operationId`; operations whose id does not follow the naming rule are
//! skipped and reported. Imported APIs start disabled unless `x-atoll` says
//! otherwise; existing operation types are replaced. Local `$ref`s into
//! `components/schemas` are kept resolvable by carrying the components along
//! inside the stored schema.

use crate::{validate, Error, Gateway, Result};
use atoll_platform::Principal;
use atoll_protocol::gateway::{Api, ApiSpec, HttpMethod};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Operations one import may hold.
const MAX_IMPORT_OPERATIONS: usize = 1000;

/// The gateway settings carried in `x-atoll`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Extension {
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "is_zero")]
    retries: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_signature: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_encryption: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_request_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_response_bytes: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<atoll_protocol::gateway::RateLimitSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<atoll_protocol::gateway::CacheSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mock: Option<atoll_protocol::gateway::MockSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<atoll_protocol::gateway::AuthorizerSpec>,
}

fn is_zero(value: &u8) -> bool {
    *value == 0
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImportReport {
    /// Operation types created.
    pub created: Vec<String>,
    /// Operation types replaced.
    pub updated: Vec<String>,
    /// Operations not imported, with why.
    pub skipped: Vec<SkippedOperation>,
}

/// An operation the import left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedOperation {
    /// `METHOD path`.
    pub operation: String,
    /// Why.
    pub reason: String,
}

/// `/orders/${id}` → `/orders/{id}`.
fn to_openapi_path(path: &str) -> String {
    path.replace("${", "{")
}

/// `/orders/{id}` → `/orders/${id}`.
fn from_openapi_path(path: &str) -> String {
    path.replace('{', "${").replace("$${", "${")
}

/// The OpenAPI document of a group's APIs.
/// APIs that share a method and path with an earlier one are listed under
/// `x-atoll-not-exported`.
pub fn export_document(group: &atoll_protocol::gateway::ApiGroup, apis: &[Api]) -> Value {
    let mut paths = Map::new();
    let mut not_exported = Vec::new();
    for api in apis {
        let spec = &api.spec;
        let template = atoll_gateway_policy::template::PathTemplate::parse(&spec.path).ok();
        let parameters: Vec<Value> = template
            .iter()
            .flat_map(|template| template.fields().into_iter().map(str::to_owned).collect::<Vec<_>>())
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let extension = Extension {
            timeout_ms: spec.timeout_ms,
            retries: spec.retries,
            require_signature: Some(spec.require_signature),
            require_encryption: spec.require_encryption,
            max_request_bytes: spec.max_request_bytes,
            max_response_bytes: spec.max_response_bytes,
            enabled: spec.enabled,
            rate_limit: Some(spec.rate_limit)
                .filter(|limit| limit.qps.is_some() || limit.per_device_qps.is_some()),
            cache: spec.cache.clone(),
            mock: spec.mock.clone(),
            authorizer: spec.authorizer.clone(),
        };
        let mut operation = json!({
            "operationId": spec.operation_type,
            "x-atoll-operation-type": spec.operation_type,
            "x-atoll": extension,
            "responses": {
                "200": {
                    "description": "The backend's answer",
                    "content": { "application/json": { "schema": spec.response_schema.clone().unwrap_or_else(|| json!({})) } }
                }
            }
        });
        if !spec.description.is_empty() {
            operation["summary"] = json!(spec.description);
        }
        if !parameters.is_empty() {
            operation["parameters"] = json!(parameters);
        }
        if let Some(schema) = &spec.request_schema {
            operation["requestBody"] = json!({
                "content": { "application/json": { "schema": schema } }
            });
        }
        let item = paths
            .entry(to_openapi_path(&spec.path))
            .or_insert_with(|| json!({}));
        let method = spec.method.as_str().to_ascii_lowercase();
        if item.get(&method).is_some() {
            // OpenAPI has one operation per path and method; say so rather
            // than drop an API silently.
            not_exported.push(json!({
                "operation_type": spec.operation_type,
                "reason": format!("another API has the route {} {}", spec.method, spec.path),
            }));
            continue;
        }
        item[method] = operation;
    }
    let mut document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("{} (Atoll gateway group)", group.spec.name),
            "version": group.updated_at.to_string(),
        },
        "servers": [{ "url": group.spec.base_url }],
        "paths": paths,
    });
    if !not_exported.is_empty() {
        document["x-atoll-not-exported"] = json!(not_exported);
    }
    document
}

/// The JSON schema of a media type object, carrying the document's components
/// when it refers to them.
fn schema_of(media: Option<&Value>, components: Option<&Value>) -> Option<Value> {
    let mut schema = media?
        .get("content")?
        .get("application/json")?
        .get("schema")?
        .clone();
    if !schema.is_object() || schema.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    if let (Some(components), true) = (components, schema.to_string().contains("#/components/")) {
        schema["components"] = components.clone();
    }
    Some(schema)
}

/// The API specs an OpenAPI document describes, and the operations left out.
pub fn parse_document(
    group: &str,
    document: &Value,
) -> Result<(Vec<ApiSpec>, Vec<SkippedOperation>)> {
    let version = document
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !version.starts_with("3.") {
        return Err(Error::Invalid(
            "an OpenAPI 3 document is expected (\"openapi\": \"3.x\")".into(),
        ));
    }
    let paths = document
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Invalid("the document has no paths".into()))?;
    let components = document.get("components");
    let mut specs = Vec::new();
    let mut skipped = Vec::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method_name, operation) in item {
            let Some(method) = HttpMethod::parse(method_name) else {
                continue; // parameters, summary, servers, or a method the gateway does not forward
            };
            let label = format!("{method} {path}");
            if specs.len() + skipped.len() >= MAX_IMPORT_OPERATIONS {
                return Err(Error::Invalid(format!(
                    "one import holds at most {MAX_IMPORT_OPERATIONS} operations"
                )));
            }
            let operation_type = operation
                .get("x-atoll-operation-type")
                .or_else(|| operation.get("operationId"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Err(error) = validate::operation_type(operation_type) {
                skipped.push(SkippedOperation {
                    operation: label,
                    reason: error.to_string(),
                });
                continue;
            }
            let extension: Extension = match operation.get("x-atoll") {
                Some(value) => match serde_json::from_value(value.clone()) {
                    Ok(extension) => extension,
                    Err(error) => {
                        skipped.push(SkippedOperation {
                            operation: label,
                            reason: format!("x-atoll: {error}"),
                        });
                        continue;
                    }
                },
                None => Extension::default(),
            };
            let responses = operation.get("responses");
            let response = ["200", "201", "default"]
                .iter()
                .find_map(|status| responses.and_then(|responses| responses.get(*status)));
            let description = operation
                .get("summary")
                .or_else(|| operation.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(atoll_protocol::gateway::limits::MAX_DESCRIPTION_BYTES / 4)
                .collect();
            let spec = ApiSpec {
                operation_type: operation_type.to_owned(),
                group: group.to_owned(),
                method,
                path: from_openapi_path(path),
                timeout_ms: extension.timeout_ms,
                retries: extension.retries,
                require_signature: extension.require_signature.unwrap_or(true),
                require_encryption: extension.require_encryption,
                max_request_bytes: extension.max_request_bytes,
                max_response_bytes: extension.max_response_bytes,
                enabled: extension.enabled,
                description,
                request_schema: schema_of(operation.get("requestBody"), components),
                response_schema: schema_of(response, components),
                rate_limit: extension.rate_limit.unwrap_or_default(),
                cache: extension.cache,
                mock: extension.mock,
                authorizer: extension.authorizer,
            };
            match validate::api(&spec) {
                Ok(_) => specs.push(spec),
                Err(error) => skipped.push(SkippedOperation {
                    operation: label,
                    reason: error.to_string(),
                }),
            }
        }
    }
    Ok((specs, skipped))
}

impl Gateway {
    /// The OpenAPI document of a group's APIs.
    pub async fn export_openapi(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        group: &str,
    ) -> Result<Value> {
        let group = self.get_group(principal, slug, app_key, group).await?;
        let apis = self
            .list_apis(principal, slug, app_key, Some(&group.spec.name))
            .await?;
        Ok(export_document(&group, &apis))
    }

    /// Imports a group's APIs from an OpenAPI document, all in one transaction.
    /// Authorizers named by imported APIs must exist or be imported too
    /// (authorizers are created first).
    pub async fn import_openapi(
        &self,
        principal: &Principal,
        slug: &str,
        app_key: &str,
        group: &str,
        document: &Value,
    ) -> Result<ImportReport> {
        let access = self.write_access(principal, slug, app_key).await?;
        self.get_group(principal, slug, app_key, group).await?;
        let (mut specs, skipped) = parse_document(group, document)?;
        // APIs others use as authorizer first, so references resolve.
        specs.sort_by_key(|spec| spec.authorizer.is_some());
        let mut tx = self.platform.store().begin_write().await?;
        let mut report = ImportReport {
            skipped,
            ..ImportReport::default()
        };
        for spec in specs {
            let operation_type = spec.operation_type.clone();
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT id FROM gateway_apis WHERE app_id = $1 AND operation_type = $2",
            )
            .bind(&access.app_id)
            .bind(&operation_type)
            .fetch_optional(&mut **tx)
            .await?;
            if exists.is_some() {
                self.update_api(&mut tx, &access.app_id, &operation_type, spec)
                    .await?;
                report.updated.push(operation_type);
            } else {
                self.insert_api(&mut tx, &access.app_id, spec).await?;
                report.created.push(operation_type);
            }
        }
        self.bump(&mut tx, &access.app_id).await?;
        self.platform
            .commit_audited(
                tx,
                &access.ctx,
                "gateway.openapi.import",
                "gateway_group",
                &format!("{app_key}/{group}"),
                json!({ "created": report.created.len(), "updated": report.updated.len(), "skipped": report.skipped.len() }),
            )
            .await?;
        self.snapshots.remove(&access.app_id);
        for operation_type in report.updated.iter() {
            self.runtime.forget_api(&access.app_id, operation_type);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_protocol::gateway::{ApiGroup, ApiGroupSpec, CacheSpec};

    fn spec(operation_type: &str, path: &str, method: HttpMethod) -> ApiSpec {
        ApiSpec {
            operation_type: operation_type.into(),
            group: "orders".into(),
            method,
            path: path.into(),
            timeout_ms: Some(1500),
            retries: 0,
            require_signature: true,
            require_encryption: false,
            max_request_bytes: None,
            max_response_bytes: None,
            enabled: true,
            description: "Reads an order".into(),
            request_schema: None,
            response_schema: Some(
                json!({"type": "object", "properties": {"id": {"type": "string"}}}),
            ),
            rate_limit: Default::default(),
            cache: Some(CacheSpec {
                ttl_secs: 30,
                key: vec!["$.id".into()],
            }),
            mock: None,
            authorizer: None,
        }
    }

    #[test]
    fn export_then_import_gives_the_same_apis() {
        let group = ApiGroup {
            id: "g".into(),
            spec: ApiGroupSpec {
                name: "orders".into(),
                base_url: "http://orders.internal:8080".into(),
                timeout_ms: None,
                headers_add: Default::default(),
                headers_remove: vec![],
                tls_verify: true,
                max_pending: None,
                breaker: Default::default(),
            },
            created_at: 1,
            updated_at: 2,
        };
        let apis: Vec<Api> = [
            spec("com.shop.order.get", "/orders/${id}", HttpMethod::Get),
            spec(
                "com.shop.order.cancel",
                "/orders/${id}/cancel",
                HttpMethod::Post,
            ),
        ]
        .into_iter()
        .map(|spec| Api {
            id: "x".into(),
            spec,
            created_at: 1,
            updated_at: 1,
        })
        .collect();
        let document = export_document(&group, &apis);
        assert!(document["paths"]["/orders/{id}"]["get"].is_object());
        let (mut specs, skipped) = parse_document("orders", &document).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        specs.sort_by(|a, b| a.operation_type.cmp(&b.operation_type));
        let mut expected: Vec<ApiSpec> = apis.into_iter().map(|api| api.spec).collect();
        expected.sort_by(|a, b| a.operation_type.cmp(&b.operation_type));
        assert_eq!(specs, expected);
    }

    #[test]
    fn imports_plain_openapi_and_reports_what_it_skips() {
        let document = json!({
            "openapi": "3.0.0",
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}},
            "paths": {
                "/pets/{petId}": {
                    "get": {
                        "operationId": "com.petstore.pet.get",
                        "summary": "One pet",
                        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                    },
                    "delete": { "operationId": "deletePet" },
                    "options": { "operationId": "com.petstore.pet.options" }
                }
            }
        });
        let (specs, skipped) = parse_document("pets", &document).unwrap();
        assert_eq!(specs.len(), 1);
        let pet = &specs[0];
        assert_eq!(pet.path, "/pets/${petId}");
        assert!(!pet.enabled, "imported APIs start disabled");
        assert!(pet.response_schema.as_ref().unwrap()["components"]["schemas"]["Pet"].is_object());
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].operation.starts_with("DELETE"));
        assert!(parse_document("pets", &json!({"swagger": "2.0"})).is_err());
    }
}
