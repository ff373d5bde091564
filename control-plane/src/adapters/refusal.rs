//! A refusal as the API writes every one: `{"error": …}` with its status; a 401 also says
//! how to authenticate.

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// The response for a refused request.
pub fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"vigil\""),
        );
    }
    response
}
