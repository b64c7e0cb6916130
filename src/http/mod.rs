//! HTTP/1.1 at the edge: request-head parsing, bodies, request targets, responses.
