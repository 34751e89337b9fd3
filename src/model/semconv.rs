//! OpenTelemetry semantic-convention attribute keys the tool reads by name. Where the
//! conventions renamed a key, the list holds the stable name first and the older aliases after
//! it: the first one present wins.

pub const SERVICE_NAME: &str = "service.name";
pub const HOST_NAME: &str = "host.name";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";

pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";

pub const HTTP_REQUEST_METHOD: [&str; 2] = ["http.request.method", "http.method"];
pub const HTTP_RESPONSE_STATUS_CODE: [&str; 2] = ["http.response.status_code", "http.status_code"];
pub const URL_FULL: [&str; 2] = ["url.full", "http.url"];
pub const URL_PATH: [&str; 2] = ["url.path", "http.target"];

pub const DB_SYSTEM: [&str; 2] = ["db.system.name", "db.system"];
pub const DB_OPERATION: [&str; 2] = ["db.operation.name", "db.operation"];
pub const DB_QUERY_SUMMARY: &str = "db.query.summary";
pub const DB_QUERY_TEXT: [&str; 2] = ["db.query.text", "db.statement"];
pub const DB_COLLECTION: [&str; 2] = ["db.collection.name", "db.sql.table"];

pub const ERROR_TYPE: &str = "error.type";
pub const RPC_STATUS_CODE: [&str; 2] = ["rpc.grpc.status_code", "rpc.response.status_code"];
pub const MCP_METHOD_NAME: &str = "mcp.method.name";

pub const MESSAGING_OPERATION_TYPE: [&str; 2] = ["messaging.operation.type", "messaging.operation"];
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";

/// The span event that records an exception, and its attributes.
pub const EXCEPTION_EVENT: &str = "exception";
pub const EXCEPTION_TYPE: &str = "exception.type";
pub const EXCEPTION_MESSAGE: &str = "exception.message";
