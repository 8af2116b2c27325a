//! Fault injection: make a running replica slow or failing, on demand, for demos and tests.
//!
//! A [`Faults`] handle holds the current setting (added latency, share of requests answered
//! 500, bodies that stall halfway). The [`Stack`](crate::Stack) applies it to every request outside `/admin/`; [`routes`]
//! adds `GET`/`PUT /admin/faults`, answered only to loopback peers; [`FaultArgs`] are the same
//! settings as start-up flags. Everything is off by default.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use http::StatusCode;
use rustapi_core::{Body, RustApi, State};
use serde::{Deserialize, Serialize};
use tower::Service;

use crate::error::{AppError, ErrorCode};
use crate::extract::PeerAddr;
use crate::stack::HttpResponse;

/// Upper bound for injected latency: one minute.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// A fault setting: extra latency, the share (0.0–1.0) of requests answered 500, and whether
/// answers stall halfway through their body.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Milliseconds added before each request is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of requests answered `500 injected_fault`, from 0.0 (none) to 1.0 (all).
    #[serde(default)]
    pub failure_rate: f64,
    /// Send the status, the headers (with the full `Content-Length`) and the first half of the
    /// body, then nothing more until the client hangs up: the failure a timeout on the headers
    /// alone never sees.
    #[serde(default)]
    pub stall_body: bool,
}

impl FaultConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// 422 naming the field when `latency_ms` is over [`MAX_LATENCY_MS`] or `failure_rate` is
    /// outside 0.0–1.0.
    pub fn validate(&self) -> Result<(), AppError> {
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(AppError::invalid_field(
                "latency_ms",
                format!("must be at most {MAX_LATENCY_MS}"),
            ));
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(AppError::invalid_field(
                "failure_rate",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }
}

/// Start-up flags for the fault setting (flatten into a clap parser).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FaultArgs {
    /// Milliseconds of latency added to every request (fault injection; 0 = off).
    #[arg(long, env = "FAULT_LATENCY_MS", default_value_t = 0, value_name = "MS")]
    pub fault_latency_ms: u64,
    /// Share of requests answered with 500, from 0.0 to 1.0 (fault injection; 0 = off).
    #[arg(
        long,
        env = "FAULT_FAILURE_RATE",
        default_value_t = 0.0,
        value_name = "RATE"
    )]
    pub fault_failure_rate: f64,
    /// Answer every request with half a body and then stall (fault injection).
    #[arg(long, env = "FAULT_STALL_BODY")]
    pub fault_stall_body: bool,
}

impl FaultArgs {
    /// The setting these flags describe.
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.fault_latency_ms,
            failure_rate: self.fault_failure_rate,
            stall_body: self.fault_stall_body,
        }
    }
}

/// A shared, changeable fault setting. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    latency_ms: Arc<AtomicU64>,
    /// Failure rate in parts per million, so it fits an atomic.
    failure_ppm: Arc<AtomicU32>,
    stall_body: Arc<AtomicBool>,
}

const PPM: f64 = 1_000_000.0;

impl Faults {
    /// Faults with this setting.
    ///
    /// # Errors
    /// The setting is out of range (see [`FaultConfig::validate`]).
    pub fn new(config: FaultConfig) -> Result<Self, AppError> {
        let faults = Self::default();
        faults.set(config)?;
        Ok(faults)
    }

    /// The current setting.
    pub fn get(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            failure_rate: f64::from(self.failure_ppm.load(Ordering::Relaxed)) / PPM,
            stall_body: self.stall_body.load(Ordering::Relaxed),
        }
    }

    /// Replaces the setting.
    ///
    /// # Errors
    /// The setting is out of range; the current one is kept.
    pub fn set(&self, config: FaultConfig) -> Result<(), AppError> {
        config.validate()?;
        self.latency_ms.store(config.latency_ms, Ordering::Relaxed);
        // In range 0..=1_000_000 after validation, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ppm = (config.failure_rate * PPM).round() as u32;
        self.failure_ppm.store(ppm, Ordering::Relaxed);
        self.stall_body.store(config.stall_body, Ordering::Relaxed);
        Ok(())
    }

    fn should_fail(&self) -> bool {
        let ppm = self.failure_ppm.load(Ordering::Relaxed);
        ppm > 0 && rand::random_range(0..1_000_000) < ppm
    }
}

/// Adds `GET /admin/faults` (the current setting) and `PUT /admin/faults` (replace it, body
/// like `{"latency_ms": 200, "failure_rate": 0.5}`) to `app`, with `faults` as state. Both
/// answer 403 unless the peer is on the loopback interface.
pub fn routes(app: RustApi, faults: Faults) -> RustApi {
    app.state(faults).route(
        "/admin/faults",
        rustapi_core::get(get_faults).put(put_faults),
    )
}

fn loopback_only(peer: PeerAddr) -> Result<(), AppError> {
    if peer.is_loopback() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "/admin/faults only answers on the loopback interface",
        ))
    }
}

async fn get_faults(
    State(faults): State<Faults>,
    peer: PeerAddr,
) -> Result<rustapi_core::Response, AppError> {
    loopback_only(peer)?;
    Ok(crate::response::json(StatusCode::OK, &faults.get()))
}

async fn put_faults(
    State(faults): State<Faults>,
    peer: PeerAddr,
    Body(body): Body,
) -> Result<rustapi_core::Response, AppError> {
    loopback_only(peer)?;
    let config: FaultConfig = serde_json::from_slice(&body).map_err(|err| {
        if err.is_data() {
            AppError::new(
                ErrorCode::ValidationFailed,
                format!("invalid fault setting: {err}"),
            )
        } else {
            AppError::bad_request(format!("malformed JSON: {err}"))
        }
    })?;
    faults.set(config)?;
    tracing::warn!(?config, "fault injection changed");
    Ok(crate::response::json(StatusCode::OK, &faults.get()))
}

/// Applies [`Faults`] to every request whose path is not under `/admin/`.
#[derive(Debug, Clone)]
pub(crate) struct FaultLayer {
    faults: Option<Faults>,
}

impl FaultLayer {
    pub(crate) fn new(faults: Option<Faults>) -> Self {
        Self { faults }
    }
}

impl<S> tower::Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FaultService<S> {
    inner: S,
    faults: Option<Faults>,
}

impl<S, B> Service<http::Request<B>> for FaultService<S>
where
    S: Service<http::Request<B>, Response = HttpResponse, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    /// The inner future as it is while no fault is set; boxed only to inject one.
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let setting = match &self.faults {
            Some(faults) if !req.uri().path().starts_with("/admin/") => Some(faults.get()),
            _ => None,
        };
        let Some(setting) = setting.filter(|setting| *setting != FaultConfig::default()) else {
            return Either::Left(self.inner.call(req));
        };
        let fail = self
            .faults
            .as_ref()
            .is_some_and(|faults| faults.should_fail());
        // Decide before sleeping, and do not call the inner service for a failure: an injected
        // 500 must not have written anything.
        let fut = (!fail).then(|| self.inner.call(req));
        Either::Right(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(setting.latency_ms)).await;
            let response = match fut {
                Some(fut) => fut.await?,
                None => AppError::new(
                    ErrorCode::InjectedFault,
                    "injected failure (fault injection is on)",
                )
                .into_http_response(),
            };
            if setting.stall_body {
                return Ok(stall_halfway(response).await);
            }
            Ok(response)
        }))
    }
}

/// The same answer, but its body stops after the first half and never ends.
async fn stall_halfway(response: HttpResponse) -> HttpResponse {
    use http_body_util::BodyExt;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    let half = body.slice(..body.len() / 2);
    crate::stack::boxed(http::Response::from_parts(
        parts,
        HalfThenNothing { half: Some(half) },
    ))
}

/// A body that yields its one chunk and then never another, nor its end.
struct HalfThenNothing {
    half: Option<bytes::Bytes>,
}

impl http_body::Body for HalfThenNothing {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        match self.half.take() {
            Some(half) => Poll::Ready(Some(Ok(http_body::Frame::data(half)))),
            // Never woken: the stall lasts until the connection is dropped.
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_settings() {
        let faults = Faults::default();
        let err = faults
            .set(FaultConfig {
                failure_rate: 1.5,
                ..FaultConfig::default()
            })
            .unwrap_err();
        assert_eq!(err.field(), Some("failure_rate"));
        assert_eq!(faults.get(), FaultConfig::default());
    }

    #[test]
    fn full_and_zero_failure_rates_are_exact() {
        let faults = Faults::new(FaultConfig {
            failure_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
        assert!((0..1000).all(|_| faults.should_fail()));
        faults.set(FaultConfig::default()).unwrap();
        assert!((0..1000).all(|_| !faults.should_fail()));
    }
}
