//! The bodies the gateway sends: streamed from the upstream, or small and whole (errors).
//! Response bodies also carry the guards that count the request as in flight, so an endpoint
//! stays "busy" for the balancer until its response has been sent, not just begun.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use pin_project_lite::pin_project;

/// Errors while streaming a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// A response body on its way to the client.
    #[project = ResponseProj]
    pub enum ResponseBody {
        /// Streamed from the upstream; `guard` is released when the body ends or is dropped.
        Upstream { #[pin] body: Incoming, guard: Box<dyn Send + Sync> },
        /// Made by the gateway (errors, problem+json).
        Whole { #[pin] body: Full<Bytes> },
        /// From a router called in this process (`souk monolith`).
        InProcess { #[pin] body: axum::body::Body },
    }
}

impl ResponseBody {
    /// A whole body.
    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        Self::Whole {
            body: Full::new(bytes.into()),
        }
    }

    /// A body from an in-process router.
    pub fn in_process(body: axum::body::Body) -> Self {
        Self::InProcess { body }
    }

    /// A streamed upstream body, holding `guard` until done.
    pub fn upstream(body: Incoming, guard: impl Send + Sync + 'static) -> Self {
        Self::Upstream {
            body,
            guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Upstream { .. } => "ResponseBody::Upstream",
            Self::Whole { .. } => "ResponseBody::Whole",
            Self::InProcess { .. } => "ResponseBody::InProcess",
        })
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            ResponseProj::Upstream { body, .. } => body.poll_frame(cx).map_err(Into::into),
            ResponseProj::Whole { body } => body.poll_frame(cx).map_err(|never| match never {}),
            ResponseProj::InProcess { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream { body, .. } => body.is_end_stream(),
            Self::Whole { body } => body.is_end_stream(),
            Self::InProcess { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream { body, .. } => body.size_hint(),
            Self::Whole { body } => body.size_hint(),
            Self::InProcess { body } => body.size_hint(),
        }
    }
}

/// The client's request body could not be read as it streamed to the upstream.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body could not be read")]
pub struct ClientBodyError(#[source] pub BoxError);

pin_project! {
    /// A request body on its way to an upstream.
    #[project = RequestProj]
    pub enum RequestBody {
        /// Streamed from the client, cut off at the route's limit; cannot be sent twice.
        Stream { #[pin] body: Limited<Incoming> },
        /// Buffered (small, or empty), so that a retry can send it again.
        Whole { #[pin] body: Full<Bytes> },
    }
}

impl RequestBody {
    /// A copy for another attempt, if this body can be sent again.
    pub fn replay(&self) -> Option<Self> {
        match self {
            Self::Whole { body } => Some(Self::Whole { body: body.clone() }),
            Self::Stream { .. } => None,
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stream { .. } => "RequestBody::Stream",
            Self::Whole { .. } => "RequestBody::Whole",
        })
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            // The client's own body failing (bad chunking, a cut connection) is marked as the
            // client's, so it answers a 400 and never counts against the upstream.
            RequestProj::Stream { body } => body.poll_frame(cx).map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    err
                } else {
                    Box::new(ClientBodyError(err)) as BoxError
                }
            }),
            RequestProj::Whole { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Stream { body } => body.is_end_stream(),
            Self::Whole { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Stream { body } => body.size_hint(),
            Self::Whole { body } => body.size_hint(),
        }
    }
}
