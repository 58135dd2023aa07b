//! Encoding: request bodies from JSON, YAML and protobuf into JSON values, and responses (objects, `Status`
//! errors) out as JSON, with the errors a real server gives for bodies it cannot read.

pub mod protobuf;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::status::ApiError;

pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.body());
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Deepest `[`/`{` nesting accepted in YAML. The YAML parser takes time quadratic in nesting before it
/// reaches its own recursion limit, so absurd nesting is refused before parsing.
const MAX_FLOW_DEPTH: usize = 100;

/// The deepest flow-collection nesting in YAML text, ignoring quoted strings and comments.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut single, mut double, mut escaped, mut comment) = (false, false, false, false);
    let mut prev = ' ';
    for ch in text.chars() {
        if comment {
            comment = ch != '\n';
        } else if double {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                double = false;
            }
        } else if single {
            single = ch != '\'';
        } else {
            match ch {
                '"' => double = true,
                '\'' => single = true,
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = ch;
    }
    max
}

/// The encodings a request body can come in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Yaml,
    Protobuf,
}

impl Format {
    /// The format of a create or update body by its media type; protobuf only for built-in kinds, as a
    /// real server has no protobuf encoding of custom resources.
    pub fn of_object(content_type: &str, builtin: bool) -> Result<Format, ApiError> {
        match content_type {
            "" | "application/json" | "*/*" => Ok(Format::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(Format::Yaml),
            protobuf::MEDIA_TYPE if builtin => Ok(Format::Protobuf),
            _ => Err(ApiError::unsupported_media_type(builtin)),
        }
    }
}

/// Decodes a body into a JSON value, with the error a real server gives.
pub fn decode_body(bytes: &[u8], format: Format) -> Result<Value, ApiError> {
    match format {
        Format::Protobuf => protobuf::decode(bytes),
        Format::Yaml => decode_json_or_yaml(bytes, true),
        Format::Json => decode_json_or_yaml(bytes, false),
    }
}

fn decode_json_or_yaml(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    if yaml {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("error decoding YAML: the body is not UTF-8"))?;
        if flow_depth(text) > MAX_FLOW_DEPTH {
            return Err(ApiError::bad_request(format!(
                "error decoding YAML: collections nested deeper than {MAX_FLOW_DEPTH} levels"
            )));
        }
        serde_yaml::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice::<Value>(bytes)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_ignores_strings_and_comments() {
        let cases = [
            ("a: 1", 0),
            ("a: [1, {b: [2]}]", 3),
            ("a: \"[[[[\"", 0),
            ("a: '[[{{'", 0),
            ("a: 1 # [[[[", 0),
            ("a: \"x\\\"[\"\nb: [1]", 1),
        ];
        for (text, want) in cases {
            assert_eq!(flow_depth(text), want, "{text}");
        }
    }
}
