//! One proxy thread's connections to upstream endpoints, over hyper's connection-level client.
//!
//! Each proxy thread owns its pool, so checkouts are never contended across threads (the lock is
//! only there because hyper wants `Send` futures; it is always free). HTTP/1.1 connections are
//! kept in a FIFO per endpoint: a checkout takes the oldest one that is ready for a new request,
//! so a connection whose last response is still streaming is passed over, not waited for. A
//! connection stays in the list for its whole life and leaves it when the upstream closes it. h2c
//! uses one multiplexed connection per endpoint.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::config::Protocol;

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened: the request was never sent.
    Connect(std::io::Error),
    /// The connection failed while the request was sent or the response awaited.
    Http(hyper::Error),
}

/// Connection settings for one send.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The endpoint.
    pub addr: SocketAddr,
    /// HTTP/1.1 or h2c.
    pub protocol: Protocol,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Most HTTP/1.1 connections kept for this endpoint on this thread.
    pub max_connections: usize,
}

/// A proxy thread's upstream connections.
#[derive(Debug, Default)]
pub struct Pool {
    /// Per endpoint, in a list rather than a hash map: a thread talks to tens of endpoints at
    /// most, and comparing a few addresses costs less than hashing one.
    http1: Mutex<Vec<(SocketAddr, VecDeque<http1::SendRequest<RequestBody>>)>>,
    http2: Mutex<HashMap<SocketAddr, http2::SendRequest<RequestBody>>>,
}

impl Pool {
    /// Sends `request` to `target`, on a pooled connection when one is ready.
    pub async fn send(
        &self,
        target: Target,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        match target.protocol {
            Protocol::Http1 => self.send_http1(target, request).await,
            Protocol::H2c => self.send_h2c(target, request).await,
        }
    }

    async fn send_http1(
        &self,
        target: Target,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut request = request;
        // A pooled connection can close just as we pick it; then hyper hands the request back
        // unsent, and it goes on a fresh connection.
        if let Some(mut sender) = self.checkout_http1(target.addr) {
            let sent = sender.try_send_request(request);
            self.checkin_http1(target, sender);
            match sent.await {
                Ok(response) => return Ok(response),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Http(err.into_error())),
                },
            }
        }
        let mut sender = connect_http1(target).await?;
        let sent = sender.send_request(request);
        self.checkin_http1(target, sender);
        sent.await.map_err(SendError::Http)
    }

    fn checkout_http1(&self, addr: SocketAddr) -> Option<http1::SendRequest<RequestBody>> {
        let mut pools = self
            .http1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, idle) = pools.iter_mut().find(|(at, _)| *at == addr)?;
        for _ in 0..idle.len() {
            let sender = idle.pop_front()?;
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            idle.push_back(sender);
        }
        None
    }

    fn checkin_http1(&self, target: Target, sender: http1::SendRequest<RequestBody>) {
        let mut pools = self
            .http1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = match pools.iter().position(|(at, _)| *at == target.addr) {
            Some(at) => at,
            None => {
                // Endpoints come and go (scaling, DNS): forget those with no connection left, so
                // the list holds only live ones however long the gateway runs.
                pools.retain(|(_, idle)| !idle.is_empty());
                pools.push((target.addr, VecDeque::new()));
                pools.len() - 1
            }
        };
        let idle = &mut pools[at].1;
        if idle.len() < target.max_connections {
            idle.push_back(sender);
        }
    }

    async fn send_h2c(
        &self,
        target: Target,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = {
            let pools = self
                .http2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pools.get(&target.addr).filter(|s| !s.is_closed()).cloned()
        };
        let mut sender = match pooled {
            Some(sender) => sender,
            None => {
                let sender = connect_h2c(target).await?;
                let mut pools = self
                    .http2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pools.insert(target.addr, sender.clone());
                sender
            }
        };
        sender.send_request(request).await.map_err(SendError::Http)
    }
}

async fn connect(target: Target) -> Result<TokioIo<TcpStream>, SendError> {
    let stream =
        match tokio::time::timeout(target.connect_timeout, TcpStream::connect(target.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(SendError::Connect(err)),
            Err(_) => return Err(SendError::Connect(std::io::ErrorKind::TimedOut.into())),
        };
    // Small requests and responses: send them now, not after Nagle's delay.
    stream.set_nodelay(true).map_err(SendError::Connect)?;
    Ok(TokioIo::new(stream))
}

async fn connect_http1(target: Target) -> Result<http1::SendRequest<RequestBody>, SendError> {
    let io = connect(target).await?;
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

async fn connect_h2c(target: Target) -> Result<http2::SendRequest<RequestBody>, SendError> {
    let io = connect(target).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "upstream h2c connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    /// An h2c (HTTP/2 with prior knowledge) server answering each request with its protocol version.
    async fn h2c_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let version = format!("{:?}", request.version());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        version,
                    ))))
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        addr
    }

    fn request(addr: SocketAddr) -> Request<RequestBody> {
        let mut request = Request::new(RequestBody::Whole {
            body: Full::new(Bytes::new()),
        });
        *request.uri_mut() = format!("http://{addr}/").parse().unwrap();
        request
    }

    #[tokio::test]
    async fn h2c_upstreams_share_one_multiplexed_connection() {
        let addr = h2c_server().await;
        let pool = Pool::default();
        let target = Target {
            addr,
            protocol: Protocol::H2c,
            connect_timeout: Duration::from_secs(1),
            max_connections: 8,
        };
        let (a, b) = tokio::join!(
            pool.send(target, request(addr)),
            pool.send(target, request(addr))
        );
        for response in [a, b] {
            let body = response
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(body, "HTTP/2.0");
        }
        assert_eq!(pool.http2.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target {
            addr,
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(1),
            max_connections: 8,
        };
        assert!(matches!(
            Pool::default().send(target, request(addr)).await,
            Err(SendError::Connect(_))
        ));
    }
}
