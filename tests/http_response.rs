//! Response bytes: exact heads, JSON escaping, status mapping.

use pushcore::http::response::{http_error, json_error, json_ok, reason, response, CONTINUE};
use pushcore::http::HttpError;

#[test]
fn method_not_allowed_exact_bytes() {
    let bytes = http_error(&HttpError::MethodNotAllowed { allow: "GET, HEAD" }, true);
    let body = r#"{"error":"Method not allowed (allowed: GET, HEAD)"}"#;
    let expected = format!(
        "HTTP/1.1 405 Method Not Allowed\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Connection: keep-alive\r\n\
         Allow: GET, HEAD\r\n\
         \r\n{body}",
        body.len()
    );
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

#[test]
fn json_error_escapes_the_message() {
    let bytes = json_error(400, "bad \"channel\" name: a\\b\n\u{1}", &[], false);
    let text = String::from_utf8(bytes).unwrap();
    let body = r#"{"error":"bad \"channel\" name: a\\b\n\u0001"}"#;
    assert_eq!(
        text,
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    );
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(value["error"], "bad \"channel\" name: a\\b\n\u{1}");
}

#[test]
fn content_length_counts_bytes_not_chars() {
    let bytes = json_error(400, "é", &[], true);
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert_eq!(body.len(), r#"{"error":"é"}"#.len());
}

#[test]
fn service_unavailable_has_retry_after() {
    let err = HttpError::ServiceUnavailable {
        message: "Server at capacity",
        retry_after_secs: 5,
    };
    let text = String::from_utf8(http_error(&err, false)).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with(r#"{"error":"Server at capacity"}"#),
        "{text}"
    );
}

#[test]
fn json_ok_exact_bytes() {
    let body = br#"{"success":true,"eventId":"1718000000000-0"}"#;
    let expected = [
        &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\nConnection: keep-alive\r\n\r\n"[..],
        body,
    ]
    .concat();
    assert_eq!(json_ok(200, body, true), expected);
}

#[test]
fn bodyless_statuses_have_no_length_or_body() {
    let bytes = response(204, "application/json", &[], b"ignored", true);
    assert_eq!(
        bytes,
        b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
    );
    assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn header_injection_is_dropped() {
    let bytes = response(
        200,
        "text/plain",
        &[
            ("X-Ok", "1"),
            ("X-Bad", "a\r\nSet-Cookie: x=1"),
            ("Bad Name", "v"),
            ("", "v"),
            ("X-Nul", "a\0"),
        ],
        b"hi",
        false,
    );
    assert_eq!(
        bytes,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\nX-Ok: 1\r\n\r\nhi"
    );
}

#[test]
fn every_error_maps_to_its_status_and_reason() {
    #[rustfmt::skip]
    let rows: &[(HttpError, u16, &str)] = &[
        (HttpError::BadRequestLine,                        400, "Bad Request"),
        (HttpError::NotFound,                              404, "Not Found"),
        (HttpError::MethodNotAllowed { allow: "POST" },    405, "Method Not Allowed"),
        (HttpError::HeadTimeout,                           408, "Request Timeout"),
        (HttpError::LengthRequired,                        411, "Length Required"),
        (HttpError::BodyTooLarge { max_bytes: 1 },         413, "Content Too Large"),
        (HttpError::UriTooLong { max_bytes: 1 },           414, "URI Too Long"),
        (HttpError::UnsupportedMediaType { expected: "application/json" }, 415, "Unsupported Media Type"),
        (HttpError::ExpectationFailed,                     417, "Expectation Failed"),
        (HttpError::HeadTooLarge { max_bytes: 1 },         431, "Request Header Fields Too Large"),
        (HttpError::TooManyHeaders { max: 1 },             431, "Request Header Fields Too Large"),
        (HttpError::ServiceUnavailable { message: "x", retry_after_secs: 1 }, 503, "Service Unavailable"),
        (HttpError::VersionNotSupported,                   505, "HTTP Version Not Supported"),
    ];
    for (err, status, phrase) in rows {
        assert_eq!(err.status(), *status, "{err:?}");
        assert_eq!(reason(*status), *phrase);
        let text = String::from_utf8(http_error(err, true)).unwrap();
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} {phrase}\r\n")),
            "{text}"
        );
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["error"], err.to_string());
    }
    assert_eq!(reason(299), "");
}

#[test]
fn framing_errors_close_and_routing_errors_do_not() {
    assert!(HttpError::BadChunk(pushcore::http::ChunkError::BadSize).must_close());
    assert!(HttpError::ContentLengthWithTransferEncoding.must_close());
    assert!(HttpError::HeadTimeout.must_close());
    assert!(!HttpError::NotFound.must_close());
    assert!(!HttpError::MethodNotAllowed { allow: "GET" }.must_close());
    assert!(!HttpError::BadBody("x".into()).must_close());
}
