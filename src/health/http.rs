//! One HTTP/1.x exchange as pure data: a request head in, response bytes
//! out. Parsing is httparse's; routing, status codes and headers follow
//! SPEC section 7.
//!
//! Invariants: a head longer than the limit (or with too many header lines)
//! is refused with 431 however it continues; anything httparse rejects is
//! 400; every response carries Content-Type, Content-Length,
//! Cache-Control: no-store and Connection: close, and a HEAD response is the
//! GET response without its body.

use std::fmt::Write as _;
use std::time::Instant;

use super::render::{self, Check};
use crate::core::snapshot::Snapshot;

/// Largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 64;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid prefix of a head: wait for more.
    Partial,
    /// A complete head; the target is as sent (query string included).
    Request { method: &'a str, target: &'a str },
    /// Refuse with this status (400 or 431) and close.
    Reject(u16),
}

/// Parse the head at the start of `buf`, which the caller never lets grow
/// much past `max_head + 1` bytes.
pub fn parse(buf: &[u8], max_head: usize) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_head => Parsed::Reject(431),
        Ok(httparse::Status::Complete(_)) => match (req.method, req.path) {
            (Some(method), Some(target)) => Parsed::Request { method, target },
            _ => Parsed::Reject(400),
        },
        Ok(httparse::Status::Partial) if buf.len() > max_head => Parsed::Reject(431),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(431),
        Err(_) => Parsed::Reject(400),
    }
}

/// The endpoints, for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Check(Check),
    Status,
    Metrics,
}

fn endpoint(target: &str) -> Option<Endpoint> {
    match path_of(target) {
        "/healthz" => Some(Endpoint::Check(Check::Health)),
        "/readyz" => Some(Endpoint::Check(Check::Ready)),
        "/startupz" => Some(Endpoint::Check(Check::Startup)),
        "/status" => Some(Endpoint::Status),
        "/metrics" => Some(Endpoint::Metrics),
        _ => None,
    }
}

/// The path of a request target: origin form (`/p?q`) or absolute form
/// (`http://host/p?q`), without query or fragment.
fn path_of(target: &str) -> &str {
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| strip_prefix_ignore_case(target, scheme))
        .map(|after| after.find('/').map_or("/", |i| &after[i..]))
        .unwrap_or(target);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// What the answers carry beside the supervisor's snapshot: figures the io
/// thread keeps itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Bytes of rinit's stdout and stderr dropped because nobody read them.
    pub log_dropped: [u64; 2],
    /// Control requests and what `logs -f` followers missed.
    pub stats: crate::io::stats::Stats,
}

/// The full response to a parsed request, answered from `snap`.
pub fn respond(
    method: &str,
    target: &str,
    snap: &Snapshot,
    extras: &Extras,
    now: Instant,
) -> Vec<u8> {
    let Some(which) = endpoint(target) else {
        return error_response(404, method == "HEAD");
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return error_response(405, false),
    };
    let (status, content_type, body) = match which {
        Endpoint::Check(check) => {
            let (ok, body) = render::check_json(check, snap);
            (if ok { 200 } else { 503 }, JSON, body)
        }
        Endpoint::Status => (200, JSON, render::status_json(snap, now)),
        Endpoint::Metrics => (200, PROMETHEUS, render::metrics_text(snap, extras)),
    };
    build(status, content_type, &body, head_only)
}

/// A short plain-text error response (404, 405 with `Allow`, 400, 431).
pub fn error_response(status: u16, head_only: bool) -> Vec<u8> {
    let body = format!("{}\n", reason(status));
    build(status, TEXT, &body, head_only)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn build(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = String::with_capacity(192 + body.len());
    // Writing into a String cannot fail; the fmt::Result is always Ok.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn parse_outcomes() {
        let get = b"GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let want = Parsed::Request {
            method: "GET",
            target: "/healthz?x=1",
        };
        assert_eq!(parse(get, MAX_HEAD), want);
        assert_eq!(parse(&get[..20], MAX_HEAD), Parsed::Partial);
        assert_eq!(parse(b"", MAX_HEAD), Parsed::Partial);
        assert_eq!(
            parse(b"GET / HTTP/2.0\r\n\r\n", MAX_HEAD),
            Parsed::Reject(400)
        );
        assert_eq!(
            parse(b"G\x01T / HTTP/1.1\r\n\r\n", MAX_HEAD),
            Parsed::Reject(400)
        );
        assert_eq!(parse(b"hello world\r\n\r\n", MAX_HEAD), Parsed::Reject(400));
        assert_eq!(parse(get, 20), Parsed::Reject(431));
        let long = vec![b'a'; 40];
        let mut partial = b"GET /".to_vec();
        partial.extend_from_slice(&long);
        assert_eq!(parse(&partial, 20), Parsed::Reject(431));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many, MAX_HEAD), Parsed::Reject(431));
    }

    #[test]
    fn paths_ignore_query_and_accept_absolute_form() {
        assert_eq!(path_of("/healthz?verbose"), "/healthz");
        assert_eq!(path_of("/readyz#frag"), "/readyz");
        assert_eq!(path_of("http://h:9090/status?x"), "/status");
        assert_eq!(path_of("HTTP://h:9090"), "/");
        assert_eq!(endpoint("/healthz/"), None);
        assert_eq!(endpoint("/metrics?a=b"), Some(Endpoint::Metrics));
    }

    #[test]
    fn routing_statuses_and_headers() {
        let snap = Snapshot::empty();
        let now = Instant::now();
        let ok = text(respond("GET", "/healthz", &snap, &Extras::default(), now));
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        for header in [
            "Content-Type: application/json\r\n",
            "Cache-Control: no-store\r\n",
            "Connection: close\r\n",
        ] {
            assert!(ok.contains(header), "{header} missing in {ok}");
        }
        let head = text(respond("HEAD", "/healthz", &snap, &Extras::default(), now));
        let (head_part, body) = ok.split_once("\r\n\r\n").unwrap();
        assert_eq!(head, format!("{head_part}\r\n\r\n"));
        assert!(ok.contains(&format!("Content-Length: {}\r\n", body.len())));
        let post = text(respond("POST", "/status", &snap, &Extras::default(), now));
        assert!(post.starts_with("HTTP/1.1 405 "));
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        assert!(
            text(respond("GET", "/nope", &snap, &Extras::default(), now))
                .starts_with("HTTP/1.1 404 ")
        );
        assert!(
            text(respond("DELETE", "/nope", &snap, &Extras::default(), now))
                .starts_with("HTTP/1.1 404 ")
        );
        let metrics = text(respond("GET", "/metrics", &snap, &Extras::default(), now));
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        let bad = text(error_response(400, false));
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(bad.ends_with("\r\n\r\nBad Request\n"));
    }
}
