//! `/api/…` forwarded to the API: method, path, query, headers and body go through as they
//! are (bodies stream in both directions, nothing is buffered), hop-by-hop headers are
//! dropped, `X-Forwarded-For/Proto/Host` are added. When the API cannot be reached the
//! answer is a 502 problem+json the SPA can show like any other problem.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

use crate::WebError;
use ordexa_platform::problem::Problem;

/// How long connecting to the API may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the API may take to start answering (the API's own waits are far shorter).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the API is.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// A path the API is mounted below, without a trailing slash (usually empty).
    base_path: String,
}

impl Upstream {
    pub fn parse(raw: &str) -> Result<Self, WebError> {
        let bad = || WebError::BadUpstream(raw.to_owned());
        let uri: Uri = raw.trim().parse().map_err(|_| bad())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        if uri.query().is_some() || authority.as_str().contains('@') {
            return Err(bad());
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Upstream { scheme, authority, base_path })
    }

    /// The upstream URI for a request's path and query.
    fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, axum::http::Error> {
        let tail = path_and_query.map_or("/", PathAndQuery::as_str);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{tail}", self.base_path))
            .build()
    }

    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// The proxy's state: where to go, and a pooled HTTP/1.1 client.
pub struct Proxy {
    upstream: Upstream,
    client: Client<HttpConnector, Body>,
}

impl Proxy {
    pub fn new(upstream: Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Proxy { upstream, client }
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Connection may name further per-connection headers.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn add_forwarded(headers: &mut HeaderMap, peer: Option<SocketAddr>) {
    if let Some(peer) = peer {
        let ip = peer.ip().to_string();
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {ip}"),
            _ => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    // A TLS-terminating ingress in front of us has already said what the client used.
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = headers.get(header::HOST).cloned()
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    // The client sets Host for the upstream from the URI.
    headers.remove(header::HOST);
}

/// Forwards one request and streams the answer back.
pub async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
    let (mut parts, body) = request.into_parts();
    let uri = match proxy.upstream.uri_for(parts.uri.path_and_query()) {
        Ok(uri) => uri,
        Err(err) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Malformed request",
                format!("bad path: {err}"),
            )
            .into_response();
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, peer);
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    let method = parts.method.clone();
    let upstream_request = Request::from_parts(parts, body);

    let answer = tokio::time::timeout(RESPONSE_TIMEOUT, proxy.client.request(upstream_request)).await;
    match answer {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            tracing::debug!(%method, status = parts.status.as_u16(), "proxied");
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(err)) => {
            let origin = proxy.upstream.origin();
            tracing::warn!(error = %err, upstream = %origin, "the API cannot be reached");
            let detail = if err.is_connect() {
                format!("the API at {origin} cannot be reached; it may be starting or down — try again shortly")
            } else {
                format!("the API at {origin} closed the connection before answering")
            };
            Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "The API is unavailable", detail).into_response()
        }
        Err(_) => {
            let origin = proxy.upstream.origin();
            tracing::warn!(upstream = %origin, "the API did not answer in time");
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "The API did not answer in time",
                format!("the API at {origin} did not answer within {}s", RESPONSE_TIMEOUT.as_secs()),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_must_be_a_plain_http_origin() {
        assert!(Upstream::parse("http://127.0.0.1:8081").is_ok());
        assert!(Upstream::parse("http://api:8081/").is_ok());
        assert!(Upstream::parse("https://api:8081").is_err());
        assert!(Upstream::parse("127.0.0.1:8081").is_err());
        assert!(Upstream::parse("http://user:pw@api:8081").is_err());
        assert!(Upstream::parse("http://api:8081/?x=1").is_err());
        assert!(Upstream::parse("").is_err());
    }

    #[test]
    fn the_upstream_uri_keeps_path_and_query_below_a_base_path() -> Result<(), Box<dyn std::error::Error>> {
        let upstream = Upstream::parse("http://api:8081/prefix/")?;
        let pq = PathAndQuery::from_static("/api/v1/orders?limit=5&page_token=abc");
        assert_eq!(
            upstream.uri_for(Some(&pq))?.to_string(),
            "http://api:8081/prefix/api/v1/orders?limit=5&page_token=abc"
        );
        Ok(())
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"3\""));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key("x-secret-hop"));
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));
        assert_eq!(headers.get(header::IF_MATCH), Some(&HeaderValue::from_static("\"3\"")));
    }

    #[test]
    fn forwarded_for_appends_the_peer_to_an_earlier_chain() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.insert(header::HOST, HeaderValue::from_static("shop.example"));
        add_forwarded(&mut headers, Some(SocketAddr::from(([127, 0, 0, 1], 5000))));
        assert_eq!(headers.get(&X_FORWARDED_FOR), Some(&HeaderValue::from_static("203.0.113.7, 127.0.0.1")));
        assert_eq!(headers.get(&X_FORWARDED_PROTO), Some(&HeaderValue::from_static("http")));
        assert_eq!(headers.get(&X_FORWARDED_HOST), Some(&HeaderValue::from_static("shop.example")));
        assert!(!headers.contains_key(header::HOST));
    }
}
