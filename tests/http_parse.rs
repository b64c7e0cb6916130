//! Table-driven tests of the request-head parser (httparse `req!` style: one row per case).
//!
//! Every well-formed row is also checked at every split point (Partial until the last byte,
//! then the identical head), with pipelined bytes after it, and against httparse. Every
//! malformed row is also checked at every split point (Partial or the same error, never
//! Complete).

use pushcore::http::parse::{
    find_header, parse_head, BodyKind, Head, HeadLimits, Header, Method, Parsed, Request, Span,
    Version, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_URI_BYTES,
};
use pushcore::http::HttpError;

use BodyKind::{Chunked, Length};
use Method::*;
use Version::{Http10, Http11};

// --- real heads -------------------------------------------------------------------------------

const CHROME_EVENTSOURCE: &[u8] = b"GET /events/stream?channels=a,b HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Connection: keep-alive\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/event-stream\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
Origin: http://localhost:3000\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Dest: empty\r\n\
Referer: http://localhost:3000/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Last-Event-ID: 1718000000000-42\r\n\r\n";

const FIREFOX_EVENTSOURCE: &[u8] = b"GET /events/stream?channels=news HTTP/1.1\r\n\
Host: push.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n\
Accept: text/event-stream\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://example.com/dashboard\r\n\
Origin: https://example.com\r\n\
Connection: keep-alive\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-site\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\r\n";

const CURL_N: &[u8] = b"GET /events/stream?channels=a HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\r\n";

const NGINX_PROXIED: &[u8] = b"GET /events/stream?channels=orders&lastEventId=1718000000000-7 HTTP/1.1\r\n\
Host: push.example.com\r\n\
X-Real-IP: 203.0.113.7\r\n\
X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\n\
X-Forwarded-Proto: https\r\n\
Forwarded: for=203.0.113.7;proto=https;host=push.example.com\r\n\
Via: 1.1 nginx\r\n\
Accept: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\r\n\r\n";

/// nginx's default `proxy_pass` speaks HTTP/1.0 with `Connection: close`.
const NGINX_HTTP10: &[u8] = b"GET /events/stream?channels=a HTTP/1.0\r\n\
Host: push.example.com\r\n\
X-Forwarded-For: 198.51.100.1\r\n\
Connection: close\r\n\
Accept: text/event-stream\r\n\r\n";

const PUBLISH_CURL: &[u8] = b"POST /events/publish HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
Content-Type: application/json\r\n\
Content-Length: 64\r\n\r\n";

const PUBLISH_FETCH: &[u8] = b"POST /events/publish HTTP/1.1\r\n\
Host: api.example.com\r\n\
Connection: keep-alive\r\n\
Content-Length: 71\r\n\
Content-Type: application/json\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwdWIifQ.c2lnbmF0dXJl\r\n\
Accept: */*\r\n\
Origin: https://admin.example.com\r\n\
Accept-Encoding: gzip, deflate\r\n\r\n";

const PUBLISH_CHUNKED: &[u8] = b"POST /events/publish HTTP/1.1\r\n\
Host: localhost\r\n\
Content-Type: application/json\r\n\
Transfer-Encoding: chunked\r\n\r\n";

// --- well-formed rows -------------------------------------------------------------------------

/// One accepted head: what `Head` must say about it.
struct Good {
    name: &'static str,
    input: &'static [u8],
    method: Method,
    target: &'static str,
    version: Version,
    body: BodyKind,
    keep_alive: bool,
    headers: usize,
}

/// One row of `GOOD`: `ok!(name, input, method, target, version, body, keep_alive, headers)`.
macro_rules! ok {
    ($name:expr, $input:expr, $method:expr, $target:expr, $version:expr, $body:expr, $keep_alive:expr, $headers:expr) => {
        Good {
            name: $name,
            input: $input,
            method: $method,
            target: $target,
            version: $version,
            body: $body,
            keep_alive: $keep_alive,
            headers: $headers,
        }
    };
}

const NONE: BodyKind = BodyKind::None;

#[rustfmt::skip]
const GOOD: &[Good] = &[
    //  name                              input                                                                  method   target                         version body            keep  hdrs
    ok!("chrome eventsource",              CHROME_EVENTSOURCE,                                                     Get,     "/events/stream?channels=a,b", Http11, NONE,          true,  16),
    ok!("firefox eventsource",             FIREFOX_EVENTSOURCE,                                                    Get,     "/events/stream?channels=news",Http11, NONE,          true,  13),
    ok!("curl -N",                         CURL_N,                                                                 Get,     "/events/stream?channels=a",   Http11, NONE,          true,  3),
    ok!("behind nginx",                    NGINX_PROXIED,                                                          Get,     "/events/stream?channels=orders&lastEventId=1718000000000-7", Http11, NONE, true, 9),
    ok!("nginx default HTTP/1.0",          NGINX_HTTP10,                                                           Get,     "/events/stream?channels=a",   Http10, NONE,          false, 4),
    ok!("publish from curl",               PUBLISH_CURL,                                                           Post,    "/events/publish",             Http11, Length(64),    true,  5),
    ok!("publish from fetch",              PUBLISH_FETCH,                                                          Post,    "/events/publish",             Http11, Length(71),    true,  8),
    ok!("publish chunked",                 PUBLISH_CHUNKED,                                                        Post,    "/events/publish",             Http11, Chunked,       true,  3),
    ok!("minimal 1.1",                     b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",                                    Get,     "/",                           Http11, NONE,          true,  1),
    ok!("1.0 without Host",                b"GET / HTTP/1.0\r\n\r\n",                                              Get,     "/",                           Http10, NONE,          false, 0),
    ok!("1.0 keep-alive",                  b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",                    Get,     "/",                           Http10, NONE,          true,  1),
    ok!("1.1 close",                       b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",              Get,     "/",                           Http11, NONE,          false, 2),
    ok!("close wins over keep-alive",      b"GET / HTTP/1.0\r\nConnection: keep-alive, CLOSE\r\n\r\n",             Get,     "/",                           Http10, NONE,          false, 1),
    ok!("close in 2nd Connection field",   b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n", Get, "/",                         Http11, NONE,          false, 3),
    ok!("Connection: upgrade keeps",       b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n",            Get,     "/",                           Http11, NONE,          true,  2),
    ok!("one leading CRLF skipped",        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",                                Get,     "/",                           Http11, NONE,          true,  1),
    ok!("three leading CRLFs skipped",     b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",                        Get,     "/",                           Http11, NONE,          true,  1),
    ok!("OPTIONS *",                       b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",                                Options, "*",                           Http11, NONE,          true,  1),
    ok!("absolute-form",                   b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n",       Get,     "http://a.example/x?y=1",      Http11, NONE,          true,  1),
    ok!("absolute-form https no path",     b"GET HTTPS://a.example:8443?y HTTP/1.1\r\nHost: a\r\n\r\n",             Get,     "HTTPS://a.example:8443?y",    Http11, NONE,          true,  1),
    ok!("HEAD",                            b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",                            Head,    "/healthz",                    Http11, NONE,          true,  1),
    ok!("PUT",                             b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",              Put,     "/x",                          Http11, Length(0),     true,  2),
    ok!("DELETE",                          b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n",                                Delete,  "/x",                          Http11, NONE,          true,  1),
    ok!("PATCH",                           b"PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n",                                 Patch,   "/x",                          Http11, NONE,          true,  1),
    ok!("TRACE",                           b"TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n",                                 Trace,   "/x",                          Http11, NONE,          true,  1),
    ok!("unknown method token",            b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n",                                 Other,   "/x",                          Http11, NONE,          true,  1),
    ok!("methods are case-sensitive",      b"get / HTTP/1.1\r\nHost: a\r\n\r\n",                                    Other,   "/",                           Http11, NONE,          true,  1),
    ok!("target with sub-delims and %",    b"GET /a;b/c%20d?e=f&g=h+i|{}^~!$'()*,:@ HTTP/1.1\r\nHost: a\r\n\r\n",   Get,     "/a;b/c%20d?e=f&g=h+i|{}^~!$'()*,:@", Http11, NONE,   true,  1),
    ok!("value OWS trimmed",               b"GET / HTTP/1.1\r\nHost: \t a \t\r\n\r\n",                              Get,     "/",                           Http11, NONE,          true,  1),
    ok!("empty value",                     b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",       Get,     "/",                           Http11, NONE,          true,  3),
    ok!("empty Host is allowed",           b"GET / HTTP/1.1\r\nHost:\r\n\r\n",                                      Get,     "/",                           Http11, NONE,          true,  1),
    ok!("obs-text in value",               b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: Fran\xc3\xa7ois \xff\r\n\r\n",   Get,     "/",                           Http11, NONE,          true,  2),
    ok!("every tchar in a name",           b"GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: x\r\n\r\n",        Get,     "/",                           Http11, NONE,          true,  2),
    ok!("colon inside value",              b"GET / HTTP/1.1\r\nHost: a:80\r\nReferer: http://b:3000/c\r\n\r\n",    Get,     "/",                           Http11, NONE,          true,  2),
    ok!("Content-Length: 0",               b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",             Post,    "/p",                          Http11, Length(0),     true,  2),
    ok!("identical CL twice",              b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", Post, "/p",                  Http11, Length(5),     true,  3),
    ok!("identical CL list",               b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5 ,5, 5\r\n\r\n",       Post,    "/p",                          Http11, Length(5),     true,  2),
    ok!("CL leading zeros",                b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",           Post,    "/p",                          Http11, Length(7),     true,  2),
    ok!("CL u64::MAX (limit is later)",    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", Post, "/p",                 Http11, Length(u64::MAX), true, 2),
    ok!("TE upper-case with OWS",          b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED \r\n\r\n",   Post,    "/p",                          Http11, Chunked,       true,  2),
    ok!("HTTP/1.0 with Host and CL",       b"POST /p HTTP/1.0\r\nHost: a\r\nContent-Length: 2\r\n\r\n",             Post,    "/p",                          Http10, Length(2),     false, 2),
];

// --- malformed rows ---------------------------------------------------------------------------

use HttpError::*;

#[rustfmt::skip]
const BAD: &[(&str, &[u8], HttpError)] = &[
    // request line
    ("empty method",                      b" / HTTP/1.1\r\nHost: a\r\n\r\n",                          BadMethod),
    ("non-token in method",               b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",                      BadMethod),
    ("tab after method",                  b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",                      BadMethod),
    ("TLS ClientHello",                   b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",            BadMethod),
    ("two SPs after method",              b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",                      BadRequestLine),
    ("two SPs before version",            b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",                      BadRequestLine),
    ("SP after version",                  b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",                      BadRequestLine),
    ("no version",                        b"GET /\r\nHost: a\r\n\r\n",                                BadRequestLine),
    ("method only",                       b"GET\r\nHost: a\r\n\r\n",                                  BadRequestLine),
    ("HTTP/0.9 simple request",           b"GET / \r\n\r\n",                                          BadVersion),
    ("lower-case version",                b"GET / http/1.1\r\nHost: a\r\n\r\n",                       BadVersion),
    ("version without minor",             b"GET / HTTP/1\r\nHost: a\r\n\r\n",                         BadVersion),
    ("version 1.1.1",                     b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n",                     BadVersion),
    ("version 11.1",                      b"GET / HTTP/11.1\r\nHost: a\r\n\r\n",                      BadVersion),
    ("HTTP/2.0",                          b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",                       VersionNotSupported),
    ("HTTP/1.2",                          b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",                       VersionNotSupported),
    ("HTTP/0.9 with version",             b"GET / HTTP/0.9\r\nHost: a\r\n\r\n",                       VersionNotSupported),
    ("h2c prior-knowledge preface",       b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                        VersionNotSupported),
    // request target
    ("relative target",                   b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",                     BadTarget),
    ("authority-form CONNECT",            b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n",       BadTarget),
    ("asterisk for GET",                  b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",                       BadTarget),
    ("absolute-form userinfo",            b"GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n",            BadTarget),
    ("absolute-form empty authority",     b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",                BadTarget),
    ("ftp scheme",                        b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n",                BadTarget),
    ("fragment",                          b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",                     BadTarget),
    ("raw UTF-8 in target",                b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",             BadTarget),
    ("DEL in target",                     b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",                  BadTarget),
    ("NUL in target",                     b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",                  BadTarget),
    ("CR inside request line",            b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",                    BadRequestLine),
    // line endings
    ("bare LF ends request line",         b"GET / HTTP/1.1\nHost: a\r\n\r\n",                         BadLineEnding),
    ("bare LF ends header line",          b"GET / HTTP/1.1\r\nHost: a\n\r\n",                         BadLineEnding),
    ("bare LF ends head",                 b"GET / HTTP/1.1\r\nHost: a\r\n\n",                         BadLineEnding),
    ("bare LF before request line",       b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",                     BadLineEnding),
    ("bare CR before request line",       b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",                     BadLineEnding),
    ("bare CR where head ends",           b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n",                BadLineEnding),
    // header names
    ("empty header name",                 b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",                BadHeaderName),
    ("no colon",                          b"GET / HTTP/1.1\r\nHost: a\r\nX-No-Colon\r\n\r\n",         BadHeaderName),
    ("non-token in name",                 b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n",             BadHeaderName),
    ("UTF-8 in name",                     b"GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: 1\r\n\r\n",       BadHeaderName),
    ("NUL in name",                       b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n",            BadHeaderName),
    ("SP before colon",                   b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",                       WhitespaceBeforeColon),
    ("HTAB before colon",                 b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",                      WhitespaceBeforeColon),
    ("SP inside name",                    b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n",              WhitespaceBeforeColon),
    ("obs-fold",                          b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",           ObsFold),
    ("obs-fold with HTAB",                b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n",          ObsFold),
    ("first header line indented",        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",                       ObsFold),
    // header values
    ("NUL in value",                      b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",           BadHeaderValue),
    ("bare CR in value",                  b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",             BadHeaderValue),
    ("ESC in value",                      b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n",           BadHeaderValue),
    ("DEL in value",                      b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",           BadHeaderValue),
    ("VT in value",                       b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n",           BadHeaderValue),
    // Host
    ("HTTP/1.1 without Host",             b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",                   MissingHost),
    ("two Host fields",                   b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",              DuplicateHost),
    ("two identical Host fields",         b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",              DuplicateHost),
    ("two Host fields on 1.0",            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",              DuplicateHost),
    // Content-Length
    ("CL signed +",                       b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",  BadContentLength),
    ("CL negative",                       b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",  BadContentLength),
    ("CL hex",                            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", BadContentLength),
    ("CL empty",                          b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",     BadContentLength),
    ("CL space inside",                   b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", BadContentLength),
    ("CL trailing comma",                 b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",  BadContentLength),
    ("CL overflows u64",                  b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", BadContentLength),
    ("CL decimal point",                  b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", BadContentLength),
    ("CL two different fields",           b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ConflictingContentLength),
    ("CL list of different values",       b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", ConflictingContentLength),
    // Transfer-Encoding and smuggling shapes
    ("CL then TE",                        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthWithTransferEncoding),
    ("TE then CL",                        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ContentLengthWithTransferEncoding),
    ("TE then CL: 0",                     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", ContentLengthWithTransferEncoding),
    ("TE gzip, chunked",                  b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", UnsupportedTransferEncoding),
    ("TE chunked, gzip",                  b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", UnsupportedTransferEncoding),
    ("TE identity",                       b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", UnsupportedTransferEncoding),
    ("TE empty",                          b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",  UnsupportedTransferEncoding),
    ("TE chunked twice",                  b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", UnsupportedTransferEncoding),
    ("TE chunked with parameter",         b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", UnsupportedTransferEncoding),
    ("TE xchunked",                       b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", UnsupportedTransferEncoding),
    ("TE with VT (\\x0b) padding",        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n", BadHeaderValue),
    ("TE with SP before colon",           b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", WhitespaceBeforeColon),
    ("CL with SP before colon",           b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",  WhitespaceBeforeColon),
    ("TE folded onto next line",          b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n , gzip\r\n\r\n", ObsFold),
    ("empty TE, folded value",            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", UnsupportedTransferEncoding),
    ("TE on HTTP/1.0",                    b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingOnHttp10),
];

// --- helpers ----------------------------------------------------------------------------------

fn parse(input: &[u8]) -> Result<Parsed, HttpError> {
    parse_head(input, &HeadLimits::default(), &mut Vec::new())
}

fn parse_with(input: &[u8], limits: &HeadLimits) -> Result<Parsed, HttpError> {
    parse_head(input, limits, &mut Vec::new())
}

fn complete(input: &[u8], headers: &mut Vec<Header>) -> Head {
    match parse_head(input, &HeadLimits::default(), headers) {
        Ok(Parsed::Complete(head)) => head,
        other => panic!(
            "expected Complete, got {other:?} for {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn header_pairs<'b>(buf: &'b [u8], headers: &[Header]) -> Vec<(&'b [u8], &'b [u8])> {
    headers
        .iter()
        .map(|h| (h.name.get(buf), h.value.get(buf)))
        .collect()
}

// --- row checks -------------------------------------------------------------------------------

#[test]
fn good_rows_parse_as_expected() {
    let mut headers = Vec::new();
    for row in GOOD {
        let head = complete(row.input, &mut headers);
        let name = row.name;
        assert_eq!(head.method, row.method, "{name}: method");
        assert_eq!(
            head.target.get(row.input),
            row.target.as_bytes(),
            "{name}: target"
        );
        assert_eq!(head.version, row.version, "{name}: version");
        assert_eq!(head.body, row.body, "{name}: body");
        assert_eq!(head.keep_alive, row.keep_alive, "{name}: keep_alive");
        assert_eq!(headers.len(), row.headers, "{name}: header count");
        assert_eq!(head.len, row.input.len(), "{name}: len");
    }
}

#[test]
fn good_rows_agree_with_httparse() {
    let mut ours = Vec::new();
    for row in GOOD {
        let head = complete(row.input, &mut ours);
        let mut theirs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut theirs);
        let status = req
            .parse(row.input)
            .unwrap_or_else(|e| panic!("{}: httparse: {e}", row.name));
        assert_eq!(
            status,
            httparse::Status::Complete(head.len),
            "{}: len",
            row.name
        );
        assert_eq!(
            req.method.map(str::as_bytes),
            Some(head.method_span.get(row.input)),
            "{}",
            row.name
        );
        assert_eq!(
            req.path.map(str::as_bytes),
            Some(head.target.get(row.input)),
            "{}",
            row.name
        );
        let version = match head.version {
            Http10 => 0,
            Http11 => 1,
        };
        assert_eq!(req.version, Some(version), "{}", row.name);
        let theirs: Vec<_> = req
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        assert_eq!(
            header_pairs(row.input, &ours),
            theirs,
            "{}: headers",
            row.name
        );
    }
}

#[test]
fn good_rows_partial_at_every_split_then_identical() {
    let mut headers = Vec::new();
    for row in GOOD {
        let whole = complete(row.input, &mut headers);
        let expected_headers = headers.clone();
        for cut in 0..row.input.len() {
            let prefix = &row.input[..cut];
            assert_eq!(
                parse_head(prefix, &HeadLimits::default(), &mut headers),
                Ok(Parsed::Partial),
                "{}: cut at {cut}",
                row.name
            );
        }
        assert_eq!(complete(row.input, &mut headers), whole, "{}", row.name);
        assert_eq!(headers, expected_headers, "{}", row.name);
    }
}

#[test]
fn good_rows_with_pipelined_bytes_after() {
    let mut headers = Vec::new();
    for row in GOOD {
        let whole = complete(row.input, &mut headers);
        let mut buf = row.input.to_vec();
        buf.extend_from_slice(b"{\"channel\":\"x\"}GET / HTTP/1.1\r\n\r\n");
        assert_eq!(complete(&buf, &mut headers), whole, "{}", row.name);
    }
}

#[test]
fn bad_rows_fail_with_their_error() {
    for (name, input, expected) in BAD {
        assert_eq!(parse(input), Err(expected.clone()), "{name}");
        assert_eq!(
            parse(input).err().map(|e| e.status()),
            Some(expected.status()),
            "{name}"
        );
    }
}

#[test]
fn bad_rows_never_complete_at_any_split() {
    for (name, input, expected) in BAD {
        for cut in 0..input.len() {
            match parse(&input[..cut]) {
                Ok(Parsed::Partial) => {}
                Err(e) if e == *expected => {}
                other => {
                    panic!("{name}: cut at {cut}: {other:?}, expected Partial or {expected:?}")
                }
            }
        }
    }
}

#[test]
fn malformed_rows_outnumber_well_formed_rows() {
    assert!(
        BAD.len() >= GOOD.len(),
        "{} bad vs {} good",
        BAD.len(),
        GOOD.len()
    );
    assert!(BAD.len() + GOOD.len() >= 60);
}

/// Where httparse accepts a row we refuse, the difference is one listed in the module doc.
#[test]
fn httparse_accepts_the_smuggling_shapes_we_refuse() {
    let documented = [
        "CL then TE",
        "TE then CL",
        "CL two different fields",
        "TE gzip, chunked",
        "two Host fields",
        "HTTP/1.1 without Host",
        "relative target",
        "fragment",
        "bare LF ends header line",
    ];
    for (name, input, _) in BAD.iter().filter(|(name, ..)| documented.contains(name)) {
        let mut theirs = [httparse::EMPTY_HEADER; 16];
        let status = httparse::Request::new(&mut theirs).parse(input);
        assert!(
            matches!(status, Ok(httparse::Status::Complete(_))),
            "{name}: httparse says {status:?}"
        );
    }
}

// --- specific values --------------------------------------------------------------------------

#[test]
fn header_values_are_trimmed_and_names_kept_as_sent() {
    let input =
        b"GET / HTTP/1.1\r\nHost: \t a b \t\r\nX-Empty:\r\nACCEPT:text/event-stream\r\n\r\n";
    let mut headers = Vec::new();
    complete(input, &mut headers);
    let pairs = header_pairs(input, &headers);
    assert_eq!(
        pairs,
        vec![
            (&b"Host"[..], &b"a b"[..]),
            (&b"X-Empty"[..], &b""[..]),
            (&b"ACCEPT"[..], &b"text/event-stream"[..]),
        ]
    );
}

#[test]
fn leading_empty_lines_count_in_len_and_spans_index_the_buffer() {
    let input = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut headers = Vec::new();
    let head = complete(input, &mut headers);
    assert_eq!(head.len, input.len());
    assert_eq!(head.method_span, Span { start: 4, end: 7 });
    assert_eq!(head.target.get(input), b"/x");
}

#[test]
fn find_header_is_case_insensitive_and_returns_the_first() {
    let mut headers = Vec::new();
    complete(CHROME_EVENTSOURCE, &mut headers);
    let get = |name| find_header(CHROME_EVENTSOURCE, &headers, name);
    assert_eq!(get("last-event-id"), Some(&b"1718000000000-42"[..]));
    assert_eq!(get("ACCEPT"), Some(&b"text/event-stream"[..]));
    assert_eq!(get("Sec-CH-UA-Mobile"), Some(&b"?0"[..]));
    assert_eq!(get("x-missing"), None);
    assert_eq!(get(""), None);
}

#[test]
fn request_view_accessors() {
    let input = b"POST /events/publish?x=1 HTTP/1.1\r\nHost: a\r\nX-Tag: one\r\nExpect: 100-Continue\r\nx-tag: two\r\n\r\n";
    let mut headers = Vec::new();
    let head = complete(input, &mut headers);
    let req = Request {
        buf: input,
        head,
        headers: &headers,
    };
    assert_eq!(req.method_bytes(), b"POST");
    assert_eq!(req.target_bytes(), b"/events/publish?x=1");
    assert_eq!(req.header("x-tag"), Some(&b"one"[..]));
    assert_eq!(req.header_str("HOST"), Some("a"));
    assert_eq!(
        req.header_all("X-TAG").collect::<Vec<_>>(),
        vec![&b"one"[..], &b"two"[..]]
    );
    assert_eq!(req.iter().count(), 4);
    assert!(req.expects_continue());
}

#[test]
fn headers_vec_is_cleared_and_reused() {
    let mut headers = Vec::with_capacity(32);
    complete(CHROME_EVENTSOURCE, &mut headers);
    assert_eq!(headers.len(), 16);
    complete(CURL_N, &mut headers);
    assert_eq!(headers.len(), 3);
    assert_eq!(
        headers.capacity(),
        32,
        "no reallocation for a head that fits"
    );
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let mut buf = PUBLISH_CURL.to_vec();
    buf.extend_from_slice(&[b'x'; 64]);
    buf.extend_from_slice(CURL_N);
    let mut headers = Vec::new();
    let first = complete(&buf, &mut headers);
    assert_eq!(first.body, Length(64));
    let second_start = first.len + 64;
    let second = complete(&buf[second_start..], &mut headers);
    assert_eq!(
        second.target.get(&buf[second_start..]),
        b"/events/stream?channels=a"
    );
    assert_eq!(second.len, CURL_N.len());
}

#[test]
fn span_get_never_panics() {
    let buf = b"abc";
    assert_eq!(Span { start: 1, end: 3 }.get(buf), b"bc");
    assert_eq!(Span { start: 2, end: 9 }.get(buf), b"");
    assert_eq!(Span { start: 3, end: 1 }.get(buf), b"");
    assert_eq!(
        Span {
            start: u32::MAX,
            end: u32::MAX
        }
        .get(buf),
        b""
    );
    assert_eq!(Span { start: 3, end: 1 }.len(), 0);
    assert!(Span::default().is_empty());
    assert_eq!(Span { start: 1, end: 3 }.len(), 2);
}

#[test]
fn every_single_byte_input_is_partial_or_an_error() {
    for b in 0..=255u8 {
        let result = parse(&[b]);
        assert!(!matches!(result, Ok(Parsed::Complete(_))), "byte {b:#x}");
        if b == b'\r' || httparse_token(b) {
            assert_eq!(result, Ok(Parsed::Partial), "byte {b:#x}");
        }
    }
}

fn httparse_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// --- limits -----------------------------------------------------------------------------------

/// A head of exactly `len` bytes: `GET / HTTP/1.1`, `Host: a`, one padding field.
fn head_of_len(len: usize) -> Vec<u8> {
    let fixed = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n".len();
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    head.resize(head.len() + (len - fixed), b'p');
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), len);
    head
}

#[test]
fn head_bytes_limit_is_inclusive() {
    for max in [64, 1000, DEFAULT_MAX_HEAD_BYTES] {
        let limits = HeadLimits {
            max_head_bytes: max,
            ..HeadLimits::default()
        };
        assert!(
            matches!(parse_with(&head_of_len(max), &limits), Ok(Parsed::Complete(h)) if h.len == max)
        );
        assert_eq!(
            parse_with(&head_of_len(max + 1), &limits),
            Err(HeadTooLarge { max_bytes: max })
        );
    }
}

#[test]
fn head_bytes_limit_applies_while_partial() {
    let limits = HeadLimits {
        max_head_bytes: 64,
        ..HeadLimits::default()
    };
    let unfinished = &head_of_len(100)[..80];
    assert_eq!(parse_with(&unfinished[..64], &limits), Ok(Parsed::Partial));
    assert_eq!(
        parse_with(&unfinished[..65], &limits),
        Err(HeadTooLarge { max_bytes: 64 })
    );
    // A complete head within the limit is fine whatever follows it.
    let mut buf = head_of_len(64);
    buf.extend_from_slice(&[b'x'; 100]);
    assert!(matches!(parse_with(&buf, &limits), Ok(Parsed::Complete(h)) if h.len == 64));
    // Leading empty lines count.
    let mut buf = b"\r\n".to_vec();
    buf.extend_from_slice(&head_of_len(62));
    assert!(matches!(parse_with(&buf, &limits), Ok(Parsed::Complete(h)) if h.len == 64));
    buf.insert(0, b'\n');
    buf.insert(0, b'\r');
    assert_eq!(
        parse_with(&buf, &limits),
        Err(HeadTooLarge { max_bytes: 64 })
    );
}

#[test]
fn head_bytes_limit_default_with_many_headers() {
    // 16 KiB of ordinary fields, no end: 431 at the 16385th byte.
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while buf.len() <= DEFAULT_MAX_HEAD_BYTES {
        buf.extend_from_slice(
            b"X-Filler: 0123456789abcdef0123456789abcdef0123456789abcdef01234567\r\n",
        );
    }
    let limits = HeadLimits {
        max_headers: 1000,
        ..HeadLimits::default()
    };
    assert_eq!(
        parse_with(&buf[..DEFAULT_MAX_HEAD_BYTES], &limits),
        Ok(Parsed::Partial)
    );
    assert_eq!(
        parse_with(&buf[..DEFAULT_MAX_HEAD_BYTES + 1], &limits),
        Err(HeadTooLarge {
            max_bytes: DEFAULT_MAX_HEAD_BYTES
        })
    );
}

fn head_with_fields(n: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[test]
fn header_count_limit_is_inclusive() {
    for max in [1, 10, DEFAULT_MAX_HEADERS] {
        let limits = HeadLimits {
            max_headers: max,
            ..HeadLimits::default()
        };
        let mut headers = Vec::new();
        assert!(matches!(
            parse_head(&head_with_fields(max), &limits, &mut headers),
            Ok(Parsed::Complete(_))
        ));
        assert_eq!(headers.len(), max);
        assert_eq!(
            parse_with(&head_with_fields(max + 1), &limits),
            Err(TooManyHeaders { max })
        );
        assert_eq!(TooManyHeaders { max }.status(), 431);
    }
}

#[test]
fn header_count_limit_applies_while_partial() {
    let limits = HeadLimits {
        max_headers: 2,
        ..HeadLimits::default()
    };
    let input = b"GET / HTTP/1.1\r\nHost: a\r\nX-1: v\r\nX";
    assert_eq!(
        parse_with(&input[..input.len() - 1], &limits),
        Ok(Parsed::Partial)
    );
    assert_eq!(parse_with(input, &limits), Err(TooManyHeaders { max: 2 }));
}

fn head_with_target_len(len: usize) -> Vec<u8> {
    let mut head = b"GET /".to_vec();
    head.resize(4 + len, b'a');
    head.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    head
}

#[test]
fn uri_limit_is_inclusive() {
    for max in [1, 100, DEFAULT_MAX_URI_BYTES] {
        let limits = HeadLimits {
            max_uri_bytes: max,
            ..HeadLimits::default()
        };
        assert!(
            matches!(parse_with(&head_with_target_len(max), &limits), Ok(Parsed::Complete(h)) if h.target.len() == max)
        );
        assert_eq!(
            parse_with(&head_with_target_len(max + 1), &limits),
            Err(UriTooLong { max_bytes: max })
        );
        assert_eq!(UriTooLong { max_bytes: max }.status(), 414);
    }
}

#[test]
fn uri_limit_applies_before_the_request_line_ends() {
    let limits = HeadLimits {
        max_uri_bytes: 100,
        ..HeadLimits::default()
    };
    let head = head_with_target_len(200);
    assert_eq!(parse_with(&head[..4 + 100], &limits), Ok(Parsed::Partial));
    assert_eq!(
        parse_with(&head[..4 + 101], &limits),
        Err(UriTooLong { max_bytes: 100 })
    );
    // Longer than the URI limit and the head limit: the URI limit names the problem.
    let limits = HeadLimits {
        max_head_bytes: 64,
        max_uri_bytes: 50,
        ..HeadLimits::default()
    };
    assert_eq!(
        parse_with(&head, &limits),
        Err(UriTooLong { max_bytes: 50 })
    );
}

#[test]
fn default_limits() {
    assert_eq!(
        HeadLimits::default(),
        HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024
        }
    );
}

#[test]
fn method_names_round_trip() {
    for m in [Get, Head, Post, Put, Delete, Options, Patch, Trace, Connect] {
        let name = m.as_str().unwrap();
        assert_eq!(Method::from_bytes(name.as_bytes()), m);
    }
    assert_eq!(Other.as_str(), None);
    assert_eq!(Method::from_bytes(b"Get"), Other);
}

// --- differential: mutated heads ---------------------------------------------------------------

/// xorshift64*: a deterministic stream of pseudo-random numbers, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[u8] = b"\r\n \t:;,/?#%*@\x00\x7f\x80\xff\x0bHTTP/1.0chunkedContent-Length";

fn mutate(rng: &mut Rng, head: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        let byte = if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(3) {
            0 if at < out.len() => out[at] = byte,
            1 if at < out.len() => {
                out.remove(at);
            }
            _ => out.insert(at, byte),
        }
    }
    out
}

/// Whatever we accept, httparse accepts with the same method, target, version, fields and length;
/// whatever we call Partial, httparse does not call Complete. (We are a strict subset.)
#[test]
fn mutated_heads_agree_with_httparse_when_we_accept() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ours = Vec::new();
    let (mut accepted, mut partial, mut refused) = (0, 0, 0);
    for i in 0..60_000 {
        let row = &GOOD[i % GOOD.len()];
        let input = mutate(&mut rng, row.input);
        let mut theirs = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut theirs);
        let their_status = req.parse(&input);
        match parse_head(&input, &HeadLimits::default(), &mut ours) {
            Ok(Parsed::Complete(head)) => {
                accepted += 1;
                let ctx = String::from_utf8_lossy(&input);
                assert_eq!(
                    their_status,
                    Ok(httparse::Status::Complete(head.len)),
                    "{ctx:?}"
                );
                assert_eq!(
                    req.method.map(str::as_bytes),
                    Some(head.method_span.get(&input)),
                    "{ctx:?}"
                );
                assert_eq!(
                    req.path.map(str::as_bytes),
                    Some(head.target.get(&input)),
                    "{ctx:?}"
                );
                let theirs: Vec<_> = req
                    .headers
                    .iter()
                    .map(|h| (h.name.as_bytes(), h.value))
                    .collect();
                assert_eq!(header_pairs(&input, &ours), theirs, "{ctx:?}");
            }
            Ok(Parsed::Partial) => {
                partial += 1;
                assert!(
                    !matches!(their_status, Ok(httparse::Status::Complete(_))),
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            Err(e) => {
                refused += 1;
                assert!(matches!(e.status(), 400 | 414 | 431 | 505), "{e:?}");
            }
        }
    }
    // The mutations exercise all three outcomes.
    assert!(
        accepted > 1000 && partial > 100 && refused > 1000,
        "{accepted} {partial} {refused}"
    );
}

/// Every prefix of every mutated head is Partial or the error of the whole: errors are decided by
/// the first offending byte, so reading more never turns an error into something else.
#[test]
fn mutated_heads_prefixes_are_partial_or_the_same_outcome() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for i in 0..3_000 {
        let row = &GOOD[i % GOOD.len()];
        let input = mutate(&mut rng, row.input);
        let whole = parse(&input);
        for cut in 0..input.len() {
            let prefix = parse(&input[..cut]);
            match (&prefix, &whole) {
                (Ok(Parsed::Partial), _) => {}
                (Err(a), Err(b)) if a == b => {}
                // A complete head followed by garbage: the head is the same.
                (Ok(Parsed::Complete(a)), Ok(Parsed::Complete(b))) if a == b => {}
                _ => panic!(
                    "{:?}: cut {cut}: {prefix:?} vs whole {whole:?}",
                    String::from_utf8_lossy(&input)
                ),
            }
        }
    }
}
