//! What one client may hold of the server: who the client is (the peer, or the forwarded
//! address behind a trusted proxy), how many connections it may keep open, and how long its
//! request body may take to arrive. Each limit answers JSON like the rest of the API.

use super::error::MAX_BODY_BYTES;
use crate::error::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The limits in force, from the settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub body_timeout: Duration,
    pub max_connections_per_client: usize,
    /// Open connections per peer address.
    pub counts: ConnectionCounts,
    /// Requests in flight per forwarded client, behind a trusted proxy.
    pub in_flight: ConnectionCounts,
}

impl Limits {
    pub fn from_settings(s: &crate::config::Settings) -> Limits {
        Limits {
            trusted_proxies: Arc::new(s.trusted_proxies.clone()),
            body_timeout: s.body_timeout,
            max_connections_per_client: s.max_connections_per_client,
            counts: ConnectionCounts::default(),
            in_flight: ConnectionCounts::default(),
        }
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` address that is not itself a trusted proxy (each proxy
    /// appends the address it heard from, so addresses left of that are the client's own
    /// claims). A trusted peer with no usable header stays the client.
    ///
    /// The answer is a counting key ([`client_key`]): IPv4-mapped IPv6 as IPv4, other IPv6
    /// by its /64 (one host can hold a whole /64).
    pub fn client_addr(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.is_trusted_proxy(peer) {
            return Some(client_key(peer));
        }
        // Several headers are one list, in order (RFC 9110 section 5.3).
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in req.headers().get_all("x-forwarded-for") {
            for item in value.as_bytes().split(|b| *b == b',') {
                let parsed = std::str::from_utf8(item)
                    .ok()
                    .and_then(|t| t.trim().parse::<IpAddr>().ok());
                match parsed {
                    Some(ip) => hops.push(ip),
                    // A hop we cannot read: believe nothing left of it.
                    None => hops.clear(),
                }
            }
        }
        let client = hops
            .into_iter()
            .rev()
            .find(|ip| !self.is_trusted_proxy(*ip))
            .unwrap_or(peer);
        Some(client_key(client))
    }
}

/// The address limits count by: IPv4-mapped IPv6 as its IPv4, other IPv6 cut to its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Counters shared by every worker thread.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounts {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held for as long as something (a connection, a request) counts against an address.
#[derive(Debug)]
pub struct Slot {
    counts: ConnectionCounts,
    ip: IpAddr,
    /// How many the address held, this one included, when it was taken.
    pub ordinal: usize,
}

impl ConnectionCounts {
    fn take(&self, ip: IpAddr) -> Slot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        *n += 1;
        Slot {
            counts: self.clone(),
            ip,
            ordinal: *n,
        }
    }

    /// What `ip` holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Marks the connection's own slot (peer address), kept with the connection.
#[derive(Debug)]
struct ConnectionSlot(Slot);

/// For `HttpServer::on_connect`: counts each new TCP connection against its peer address
/// for as long as it is open (actix drops the connection's data when it closes).
pub fn on_connect(counts: ConnectionCounts) -> impl Fn(&dyn std::any::Any, &mut Extensions) {
    move |conn, data| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Ok(peer) = tcp.peer_addr() {
                data.insert(ConnectionSlot(counts.take(client_key(peer.ip()))));
            }
        }
    }
}

/// Refuses, with 429 and a closed connection, a request on a connection past the peer's
/// connection cap, or (behind a trusted proxy) past the forwarded client's cap of requests
/// in flight.
pub async fn cap_connections(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(limits) = req.app_data::<actix_web::web::Data<Limits>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let cap = limits.max_connections_per_client;
    let peer = req.peer_addr().map(|a| a.ip());
    let behind_proxy = peer.is_some_and(|ip| limits.is_trusted_proxy(ip));
    let refuse = |req: ServiceRequest| {
        let mut res = Error::TooManyRequests(format!(
            "this address holds more than {cap} connections; close some and try again"
        ))
        .error_response();
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        Ok(req.into_response(res).map_into_right_body())
    };
    if !behind_proxy {
        if let Some(slot) = req.conn_data::<ConnectionSlot>() {
            if slot.0.ordinal > cap {
                return refuse(req);
            }
        }
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(client) = limits.client_addr(req.request()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let in_flight = limits.in_flight.take(client);
    if in_flight.ordinal > cap {
        return refuse(req);
    }
    let res = next.call(req).await;
    drop(in_flight);
    res.map(ServiceResponse::map_into_left_body)
}

/// Whether the request announces a body (a length above zero, or chunked).
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        Some(len) => len.trim() != "0",
        None => false,
    }
}

/// Reads the whole request body, at most [`MAX_BODY_BYTES`], within the body timeout, before
/// the handler runs; a body that takes longer gets 408 and its connection is closed (a
/// client that sends headers and then stalls would otherwise hold a connection for ever).
pub async fn read_body_in_time(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let timeout = match req.app_data::<actix_web::web::Data<Limits>>() {
        Some(l) if has_body(&req) => l.body_timeout,
        _ => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
    };
    let mut payload = req.take_payload();
    let read = async {
        let mut body = actix_web::web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| Error::BadRequest(format!("unreadable body: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Error::BadRequest(format!(
                    "the body is larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let outcome = tokio::time::timeout(timeout, read).await;
    let closing = |req: ServiceRequest, mut res: HttpResponse| {
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        Ok(req.into_response(res).map_into_right_body())
    };
    match outcome {
        Ok(Ok(body)) => {
            req.set_payload(actix_web::dev::Payload::from(body));
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Ok(Err(e)) => closing(req, e.error_response()),
        Err(_) => closing(
            req,
            Error::RequestTimeout(format!(
                "the request body did not arrive within {} seconds",
                timeout.as_secs()
            ))
            .error_response(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(proxies: &[&str]) -> Limits {
        Limits {
            trusted_proxies: Arc::new(proxies.iter().map(|p| p.parse().unwrap()).collect()),
            body_timeout: Duration::from_secs(10),
            max_connections_per_client: 64,
            counts: ConnectionCounts::default(),
            in_flight: ConnectionCounts::default(),
        }
    }

    fn client(l: &Limits, peer: &str, headers: &[&[u8]]) -> String {
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        for h in headers {
            req = req.append_header((
                "x-forwarded-for",
                header::HeaderValue::from_bytes(h).unwrap(),
            ));
        }
        l.client_addr(&req.to_http_request()).unwrap().to_string()
    }

    #[test]
    fn forwarded_for_is_read_right_to_left_and_only_from_trusted_proxies() {
        let none = limits(&[]);
        assert_eq!(
            client(&none, "192.0.2.1:5000", &[b"203.0.113.9"]),
            "192.0.2.1"
        );
        let proxy = limits(&["10.0.0.0/8"]);
        assert_eq!(
            client(&proxy, "10.0.0.5:5000", &[b"203.0.113.9"]),
            "203.0.113.9"
        );
        // The client's own claims sit left of what the proxy appended.
        assert_eq!(
            client(
                &proxy,
                "10.0.0.5:5000",
                &[b"1.2.3.4, 203.0.113.9, 10.0.0.7"]
            ),
            "203.0.113.9"
        );
        // Several headers are one list.
        assert_eq!(
            client(&proxy, "10.0.0.5:5000", &[b"1.2.3.4", b"203.0.113.9"]),
            "203.0.113.9"
        );
        // An unreadable hop (not an address, not UTF-8) cuts off what is left of it, and
        // never makes the proxy the client.
        assert_eq!(
            client(&proxy, "10.0.0.5:5000", &[b"\xff\xfe, 203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&proxy, "10.0.0.5:5000", &[b"203.0.113.9, junk"]),
            "10.0.0.5"
        );
        // IPv4-mapped peers are the IPv4 they map; IPv6 clients count by their /64.
        assert_eq!(
            client(&proxy, "[::ffff:10.0.0.5]:5000", &[b"203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&none, "[2001:db8:1:2:aaaa::1]:5000", &[]),
            "2001:db8:1:2::"
        );
    }

    #[test]
    fn a_slot_counts_until_dropped() {
        let counts = ConnectionCounts::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = counts.take(ip);
        let b = counts.take(ip);
        assert_eq!((a.ordinal, b.ordinal, counts.held_by(ip)), (1, 2, 2));
        drop(a);
        assert_eq!(counts.held_by(ip), 1);
        drop(b);
        assert_eq!(counts.held_by(ip), 0);
    }
}
