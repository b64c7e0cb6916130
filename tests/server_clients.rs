//! Real clients against the server: a published EventSource client crate (LaunchDarkly's
//! `eventsource-client`, which reconnects with `Last-Event-ID`), curl, and the HTTP/1.1
//! features publishers use (pipelining, chunked bodies, `Expect: 100-continue`, HTTP/1.0).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use es::Client as _;
use eventsource_client as es;
use futures::StreamExt;
use serde_json::json;

// ----- a TCP proxy whose connections the test can cut ---------------------------------------------

/// Forwards connections to `upstream`; records each request head; [`Proxy::cut`] drops every
/// connection it carries (as a network failure would).
struct Proxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let live = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, h, s) = (Arc::clone(&live), Arc::clone(&heads), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                            if let Ok(mut live) = l.lock() {
                                live.push(c2);
                                live.push(s2);
                            }
                        }
                        let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone())
                        else {
                            continue;
                        };
                        let heads = Arc::clone(&h);
                        std::thread::spawn(move || pump(client_r, server_w, Some(heads)));
                        std::thread::spawn(move || pump(server, client, None));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            live,
            heads,
            stop,
        }
    }

    /// Drop every connection the proxy carries.
    fn cut(&self) {
        if let Ok(mut live) = self.live.lock() {
            for s in live.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn request_heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// Copy `from` → `to` until either side ends; with `heads`, record the first request head.
fn pump(mut from: TcpStream, mut to: TcpStream, heads: Option<Arc<Mutex<Vec<String>>>>) {
    let mut buf = [0u8; 16 * 1024];
    let mut head = Vec::new();
    let mut recorded = heads.is_none();
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !recorded {
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        if let Some(h) = &heads {
                            if let Ok(mut h) = h.lock() {
                                h.push(String::from_utf8_lossy(&head[..end]).into_owned());
                            }
                        }
                        recorded = true;
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

// ----- eventsource-client ---------------------------------------------------------------------------

/// What the client crate delivered, as (id, type, data).
type Received = (Option<String>, String, String);

/// Next event from the client stream (skipping comments and connection notices) within 5 s.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = es::Result<es::SSE>> + Unpin),
    errors: &mut usize,
) -> Received {
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("no event from the client within 5 s");
        match item {
            Some(Ok(es::SSE::Event(ev))) => return (ev.id, ev.event_type, ev.data),
            Some(Ok(es::SSE::Connected(details))) => assert_eq!(details.response().status(), 200),
            Some(Ok(es::SSE::Comment(_))) => {}
            Some(Err(_)) => *errors += 1,
            None => panic!("the client stream ended"),
        }
    }
}

/// The client receives published events with their ids, types and data; when the connection
/// drops it reconnects with `Last-Event-ID` and gets exactly the missed events, then live ones.
fn eventsource_client_receives_and_resumes(driver: Driver) {
    let server = Server::start_with_driver(driver, &["--retry", "200"]);
    let proxy = Proxy::start(server.addr());
    let url = format!("http://{}/events/stream?channels=ld", proxy.addr);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let transport = launchdarkly_sdk_transport::HyperTransport::builder()
            .disable_proxy()
            .connect_timeout(IO_TIMEOUT)
            .build_http()
            .expect("transport");
        let client = es::ClientBuilder::for_url(&url)
            .expect("url")
            .reconnect(
                es::ReconnectOptions::reconnect(true)
                    .retry_initial(false)
                    .delay(Duration::from_millis(100))
                    .delay_max(Duration::from_millis(500))
                    .build(),
            )
            .build_with_transport(transport);
        let mut stream = client.stream();
        let mut errors = 0;

        let (id, kind, data) = next_event(&mut stream, &mut errors).await;
        assert_eq!((id, kind.as_str()), (None, "connected"), "{data}");
        let hello: serde_json::Value = serde_json::from_str(&data).expect("connected data is JSON");
        assert!(hello["clientId"].is_string(), "{hello}");

        let body = |n: usize| {
            event_json(
                "ld",
                Some(if n.is_multiple_of(2) { "even" } else { "odd" }),
                &json!({ "n": n, "text": "a\nb" }),
            )
        };
        let mut published = Vec::new();
        for n in 0..10 {
            published.push(publish(server.addr(), &body(n)));
        }
        for (n, want) in published.iter().enumerate() {
            let (id, kind, data) = next_event(&mut stream, &mut errors).await;
            assert_eq!(id.as_deref(), Some(want.as_str()));
            assert_eq!(kind, if n % 2 == 0 { "even" } else { "odd" });
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&data).expect("JSON data"),
                json!({ "n": n, "text": "a\nb" })
            );
        }

        // The network drops; events are published meanwhile.
        proxy.cut();
        let missed: Vec<String> = (10..15).map(|n| publish(server.addr(), &body(n))).collect();
        let mut got = Vec::new();
        while got.len() < missed.len() {
            let (id, kind, data) = next_event(&mut stream, &mut errors).await;
            match kind.as_str() {
                "connected" => continue,
                "reset" => panic!("reset on resume: {data}"),
                _ => got.push(id.unwrap_or_default()),
            }
        }
        assert_eq!(
            got, missed,
            "the reconnect replays exactly the missed events"
        );
        assert!(errors >= 1, "the client never saw the connection drop");
        let live = publish(server.addr(), &body(15));
        assert_eq!(
            next_event(&mut stream, &mut errors).await.0.as_deref(),
            Some(live.as_str())
        );

        let heads = proxy.request_heads();
        assert_eq!(heads.len(), 2, "one request per connection: {heads:?}");
        let resume_header = format!("last-event-id: {}", published[9]).to_ascii_lowercase();
        assert!(
            heads[1]
                .to_ascii_lowercase()
                .lines()
                .any(|l| l.trim() == resume_header),
            "the reconnect did not send {resume_header}: {:?}",
            heads[1]
        );
    });
}
both_drivers!(eventsource_client_receives_and_resumes);

// ----- curl --------------------------------------------------------------------------------------

/// curl as subscriber (`-N`) receives published events; curl as publisher gets the event id.
fn curl_subscribes_and_publishes(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let url = format!("http://{}/events/stream?channels=curl", server.addr());
    let mut curl = Command::new("curl")
        .args(["-sN", "--max-time", "5", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn curl");
    let mut out = curl.stdout.take().expect("curl stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut parser = BlockParser::default();
    let deadline = Instant::now() + IO_TIMEOUT;
    let next = |parser: &mut BlockParser| -> Block {
        loop {
            if let Some(b) = parser.next_block() {
                return b;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = rx.recv_timeout(left).expect("curl output within 5 s");
            parser.feed(&chunk);
        }
    };
    let mut first = next(&mut parser);
    if first.event() != Some("connected") {
        assert_eq!(first.retry(), Some(3000), "{:?}", first.raw);
        first = next(&mut parser);
    }
    assert_eq!(first.event(), Some("connected"), "{:?}", first.raw);

    let publish_url = format!("http://{}/events/publish", server.addr());
    let mut ids = Vec::new();
    for n in 0..3 {
        let output = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
            ])
            .arg(event_json("curl", Some("c"), &json!({ "n": n })))
            .arg(&publish_url)
            .output()
            .expect("run curl");
        assert!(output.status.success(), "curl publish failed: {output:?}");
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("publish answer is JSON");
        ids.push(
            answer["eventId"]
                .as_str()
                .unwrap_or_else(|| panic!("no eventId: {answer}"))
                .to_string(),
        );
    }
    for (n, id) in ids.iter().enumerate() {
        let ev = next(&mut parser);
        assert_eq!(ev.id(), Some(id.as_str()));
        assert_eq!(ev.event(), Some("c"));
        assert_eq!(ev.json(), json!({ "n": n }));
    }
    let _ = curl.kill();
    let _ = curl.wait();
}
both_drivers!(curl_subscribes_and_publishes);

// ----- HTTP/1.1 features of publishers -------------------------------------------------------------

/// Several publishes (and a health check) written in one write on one keep-alive connection
/// are answered in order, with increasing ids, and delivered in that order.
fn pipelined_publishes_are_answered_in_order(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=pipe");
    let mut conn = Conn::open(server.addr());
    let mut wire = Vec::new();
    for n in 0..5 {
        wire.extend(publish_request(&event_json("pipe", None, &json!(n)), true));
        if n == 2 {
            wire.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        }
    }
    conn.send(&wire);
    let mut ids = Vec::new();
    for k in 0..6 {
        let resp = conn.read_response();
        assert_eq!(resp.status, 200, "response {k}: {}", resp.text());
        let body = resp.json();
        if k == 3 {
            assert_eq!(
                body,
                json!({ "status": "ok" }),
                "the health check is answered in its place"
            );
        } else {
            ids.push(
                body["eventId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("response {k}: {body}"))
                    .to_string(),
            );
        }
    }
    assert_increasing(&ids);
    let got: Vec<String> = sub
        .events(5)
        .iter()
        .map(|e| e.id().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, ids);
    // The connection is still usable.
    conn.publish_ok(r#"{"channel":"pipe","data":"after"}"#);
}
both_drivers!(pipelined_publishes_are_answered_in_order);

/// A chunked publish body (split over several chunks and writes) is read whole.
fn chunked_publish_body(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let mut sub = subscribe_ready(server.addr(), "/events/stream?channels=chunk");
    let body = r#"{"channel":"chunk","eventType":"parts","data":{"text":"assembled from chunks"}}"#;
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(30);
    let mut conn = Conn::open(server.addr());
    conn.send(b"POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    for part in [a, b, c] {
        conn.send(format!("{:x};ext=1\r\n{part}\r\n", part.len()).as_bytes());
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.send(b"0\r\nX-Trailer: t\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.json()["eventId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ev = sub.expect_event("chunked publish");
    assert_eq!(ev.id(), Some(id.as_str()));
    assert_eq!(ev.event(), Some("parts"));
    assert_eq!(ev.json(), json!({ "text": "assembled from chunks" }));
    // Keep-alive after a chunked body.
    conn.publish_ok(r#"{"channel":"chunk","data":2}"#);
}
both_drivers!(chunked_publish_body);

/// `Expect: 100-continue`: the server sends `100 Continue` before the body is sent, then 200.
fn expect_100_continue(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let body = r#"{"channel":"cont","data":1}"#;
    let mut conn = Conn::open(server.addr());
    conn.send(
        format!(
            "POST /events/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = conn
        .try_read_response(IO_TIMEOUT)
        .expect("100 Continue before the body");
    assert_eq!(interim.status, 100);
    conn.send(body.as_bytes());
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.json()["eventId"].is_string());
}
both_drivers!(expect_100_continue);

/// An HTTP/1.0 publish is answered and the connection closed.
fn http10_publish_is_answered_and_closed(driver: Driver) {
    let server = Server::start_with_driver(driver, &[]);
    let body = r#"{"channel":"old","data":1}"#;
    let mut conn = Conn::open(server.addr());
    conn.send(
        format!(
            "POST /events/publish HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(conn.read_to_end(IO_TIMEOUT).0, End::Eof);
}
both_drivers!(http10_publish_is_answered_and_closed);
