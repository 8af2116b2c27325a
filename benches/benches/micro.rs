//! Per-call overhead of each layer of the resilience crate, against a bare service, against
//! tower's own middleware and against the peer crates' circuit breakers, on the closed (happy)
//! path.
//!
//! Run with `cargo bench -p resilience-benches --bench micro`.
//!
//! Every case calls a trivial service through the layer under test: `poll_ready`, `call`, and
//! polling the response future to completion with a no-op waker. Two inner services: one whose
//! answer is ready at once, and one whose future is pending once before it answers, so that
//! timers are really armed and wakers really cloned (a layer must not look fast only because
//! nothing ever waited). The cases that can be shared run on 1 and 2 threads; with 2 threads each
//! thread calls its own clone of one stack (as a server does, one clone per request), so shared
//! state (breaker counters, the balancer's turn) is contended for real. Allocations per call are
//! counted by divan's `AllocProfiler`.
//!
//! The peers sit beside our own case under one name, so each run prints the comparison:
//! `breaker/{ours, recloser, failsafe, tower_resilience}` for a closed breaker guarding the
//! trivial call, `stack/{ours, tower_resilience}` for a whole client stack. Each peer is built
//! the way its documentation shows, with its defaults.
//!
//! Why divan rather than criterion: it runs the same case on several threads and counts
//! allocations per iteration, both of which these benchmarks need and criterion does not do.

use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use divan::Bencher;
use resilience::{BoxError, RetryPolicy, RoundRobin, TimeoutLayer};
use tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceBuilder};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    // A fixed number of calls per sample (`--sample-size` still overrides it): divan sizes
    // samples from its first timed call, and a case's first call on a thread also pays for the
    // thread's one-time set-up (entering the timer runtime), which makes divan settle on one
    // call per sample, below its timer's 20 ns precision.
    divan::Divan::default()
        .sample_size(2000)
        .config_with_args()
        .main();
}

/// How the inner service answers.
#[derive(Clone, Copy, Debug)]
enum Inner {
    Ready,
    PendingOnce,
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "ready",
            Self::PendingOnce => "pending_once",
        })
    }
}

const INNERS: [Inner; 2] = [Inner::Ready, Inner::PendingOnce];

/// The trivial service every case wraps: echoes its request.
#[derive(Clone, Copy)]
struct Echo(Inner);

struct EchoFuture {
    value: u64,
    pending: bool,
}

impl Future for EchoFuture {
    type Output = Result<u64, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pending {
            self.pending = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(self.value))
    }
}

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = EchoFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, value: u64) -> EchoFuture {
        EchoFuture {
            value,
            pending: matches!(self.0, Inner::PendingOnce),
        }
    }
}

/// Gives this thread a timer to register with, once: a current-thread runtime of its own,
/// entered for the rest of the thread's life. It is never driven: every future here completes
/// before any timer could fire, as on the happy path.
///
/// One timer wheel per thread is what a server's threads have: tokio's multi-thread runtime
/// keeps a timer shard per worker, and a worker registers its timers in its own. One wheel shared
/// by the bench's threads would have them fight over its lock on every armed timer, a cost no
/// server pays. Entering is done once per thread because it clones the runtime's handle (a shared
/// reference count); the runtime and the guard are leaked, since dropping either in a thread-exit
/// destructor aborts.
fn enter_timer_runtime() {
    thread_local! {
        static ENTERED: Cell<bool> = const { Cell::new(false) };
    }
    if !ENTERED.get() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime for the timers");
        let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
        std::mem::forget(runtime.enter());
        ENTERED.set(true);
    }
}

/// A clone of `service` for one iteration on this thread, made outside the timed call: the
/// thread enters its timer runtime here, so that the check for it is not counted as a layer's
/// cost (the peers' futures API cases do not make it).
fn clone_for_this_thread<S: Clone>(service: &S) -> S {
    enter_timer_runtime();
    service.clone()
}

/// One call, driven to completion on this thread, which has entered its timer runtime.
fn call<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("the service was not ready: {other:?}"),
    }
    drive(service.call(request))
}

/// Polls a response future to completion on this thread with a no-op waker: every inner future
/// here wakes itself before returning `Pending`, so polling again at once is what an executor
/// would do.
fn drive<T, E: fmt::Debug>(response: impl Future<Output = Result<T, E>>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    let mut response = pin!(response);
    loop {
        if let Poll::Ready(result) = response.as_mut().poll(&mut cx) {
            return result.expect("the happy path does not fail");
        }
    }
}

/// Calls a clone of `service` per iteration, on each of the bench's threads.
fn bench_shared<S>(bencher: Bencher, service: S)
where
    S: Service<u64, Response = u64> + Clone + Send + Sync,
    S::Error: fmt::Debug,
{
    bencher
        .with_inputs(|| clone_for_this_thread(&service))
        .bench_refs(|service| call(service, divan::black_box(7)));
}

fn boxed(never: Infallible) -> BoxError {
    match never {}
}

type Boxed = tower::util::MapErr<Echo, fn(Infallible) -> BoxError>;

fn boxed_echo(inner: Inner) -> Boxed {
    tower::util::MapErr::new(Echo(inner), boxed as fn(Infallible) -> BoxError)
}

#[divan::bench(args = INNERS, threads = [1, 2])]
fn bare(bencher: Bencher, inner: Inner) {
    bench_shared(bencher, Echo(inner));
}

#[divan::bench(args = INNERS, threads = [1, 2], consts = [2, 16])]
fn round_robin<const ENDPOINTS: usize>(bencher: Bencher, inner: Inner) {
    bench_shared(
        bencher,
        RoundRobin::new((0..ENDPOINTS).map(|key| (key, Echo(inner)))),
    );
}

/// The load-aware balancer: the same endpoints as `round_robin`, also weighing each by its
/// calls outstanding and latency estimate (one more clock read per call, at completion).
#[divan::bench(args = INNERS, threads = [1, 2], consts = [2, 16])]
fn least_loaded<const ENDPOINTS: usize>(bencher: Bencher, inner: Inner) {
    bench_shared(
        bencher,
        resilience::balance::LeastLoaded::new((0..ENDPOINTS).map(|key| (key, Echo(inner)))),
    );
}

#[divan::bench(args = INNERS, threads = [1, 2])]
fn retry_policy(bencher: Bencher, inner: Inner) {
    let policy = RetryPolicy::builder()
        .build()
        .expect("the default policy is valid");
    bench_shared(bencher, RetryLayer::new(policy).layer(boxed_echo(inner)));
}

#[divan::bench(args = INNERS, threads = [1, 2])]
fn timeout(bencher: Bencher, inner: Inner) {
    bench_shared(
        bencher,
        TimeoutLayer::new(Duration::from_secs(1)).layer(Echo(inner)),
    );
}

mod tower_middleware {
    //! Tower's own middleware, for comparison in the same run.

    use super::*;

    /// A policy that never needs to retry (the happy path), as cheap as a policy can be.
    #[derive(Clone, Copy)]
    struct NeverRetry;

    impl<Res, E> tower::retry::Policy<u64, Res, E> for NeverRetry {
        type Future = std::future::Ready<()>;

        fn retry(&mut self, _: &mut u64, _: &mut Result<Res, E>) -> Option<Self::Future> {
            None
        }

        fn clone_request(&mut self, request: &u64) -> Option<u64> {
            Some(*request)
        }
    }

    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn timeout(bencher: Bencher, inner: Inner) {
        bench_shared(
            bencher,
            tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(Echo(inner)),
        );
    }

    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn retry(bencher: Bencher, inner: Inner) {
        bench_shared(bencher, RetryLayer::new(NeverRetry).layer(Echo(inner)));
    }

    /// Power of two choices over 2 endpoints. Not `Clone` (it owns its discovery stream), so
    /// only on one thread, as tower would have it behind a `Buffer` otherwise.
    #[divan::bench(args = INNERS)]
    fn balance_p2c(bencher: Bencher, inner: Inner) {
        let endpoints = (0..2)
            .map(|_| tower::load::Constant::new(Echo(inner), 0u32))
            .collect::<Vec<_>>();
        let mut balancer =
            tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(endpoints));
        enter_timer_runtime();
        bencher.bench_local(|| call(&mut balancer, divan::black_box(7)));
    }

    /// The same over peak-EWMA load (tower's counterpart of our `least_loaded`), with tower's
    /// defaults from its documentation: 30 ms default RTT, 10 s decay.
    #[divan::bench(args = INNERS)]
    fn balance_p2c_peak_ewma(bencher: Bencher, inner: Inner) {
        enter_timer_runtime();
        let endpoints = (0..2).map(|_| Echo(inner)).collect::<Vec<_>>();
        let discover = tower::load::PeakEwmaDiscover::new(
            tower::discover::ServiceList::new(endpoints),
            Duration::from_millis(30),
            Duration::from_secs(10),
            tower::load::CompleteOnResponse::default(),
        );
        let mut balancer = tower::balance::p2c::Balance::new(discover);
        bencher.bench_local(|| call(&mut balancer, divan::black_box(7)));
    }
}

mod breaker {
    //! A closed circuit breaker guarding the trivial call: ours and the peers', one case each.
    //! recloser and failsafe are not tower layers: their documented use wraps the inner
    //! service's response future (`breaker.call(future)`), which is what these cases do.

    use failsafe::futures::CircuitBreaker as _;
    use resilience::{CircuitBreakerConfig, CircuitBreakerLayer};

    use super::*;

    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn ours(bencher: Bencher, inner: Inner) {
        bench_shared(
            bencher,
            CircuitBreakerLayer::new(CircuitBreakerConfig::default())
                .reject_when_open()
                .layer(Echo(inner)),
        );
    }

    /// `AsyncRecloser` with `Recloser::default()` (50 % failure rate over 100 calls).
    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn recloser(bencher: Bencher, inner: Inner) {
        let breaker = ::recloser::AsyncRecloser::from(::recloser::Recloser::default());
        bencher
            .with_inputs(|| breaker.clone())
            .bench_refs(|breaker| drive(breaker.call(Echo(inner).call(divan::black_box(7)))));
    }

    /// failsafe's futures `CircuitBreaker` with `Config::new().build()` (its default policy and
    /// backoff).
    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn failsafe(bencher: Bencher, inner: Inner) {
        let breaker = ::failsafe::Config::new().build();
        bencher
            .with_inputs(|| breaker.clone())
            .bench_refs(|breaker| drive(breaker.call(Echo(inner).call(divan::black_box(7)))));
    }

    /// tower-resilience's `CircuitBreakerLayer::builder().build()` (its defaults).
    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn tower_resilience(bencher: Bencher, inner: Inner) {
        let layer = ::tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
            .build()
            .expect("the default configuration is valid");
        bench_shared(bencher, layer.layer(Echo(inner)));
    }
}

mod stack {
    //! A whole client stack: ours as in the gateway, and what a user would assemble from tower
    //! and tower-resilience instead.

    use resilience::{CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer};

    use super::*;

    /// deadline → retry → round robin (2 endpoints) → breaker → attempt timeout, as in the
    /// gateway.
    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn ours(bencher: Bencher, inner: Inner) {
        let breaker = CircuitBreakerConfig::default();
        let endpoints = [0, 1].map(|key| {
            let endpoint = ServiceBuilder::new()
                .layer(CircuitBreakerLayer::new(breaker.clone()))
                .layer(TimeoutLayer::new(Duration::from_secs(1)))
                .service(Echo(inner));
            (key, endpoint)
        });
        let policy = RetryPolicy::builder()
            .deadline(Duration::from_secs(3))
            .build()
            .expect("a valid policy");
        let stack = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(3)))
            .layer(RetryLayer::new(policy))
            .service(RoundRobin::new(endpoints));
        bench_shared(bencher, stack);
    }

    /// The retry policy of tower's `Policy` documentation: retry any error, a fixed number of
    /// times.
    #[derive(Clone, Copy)]
    struct Attempts(usize);

    impl<Res, E> tower::retry::Policy<u64, Res, E> for Attempts {
        type Future = std::future::Ready<()>;

        fn retry(&mut self, _: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
            match result {
                Ok(_) => None,
                Err(_) if self.0 > 0 => {
                    self.0 -= 1;
                    Some(std::future::ready(()))
                }
                Err(_) => None,
            }
        }

        fn clone_request(&mut self, request: &u64) -> Option<u64> {
            Some(*request)
        }
    }

    /// tower `Retry` (3 attempts) → tower `Timeout` → tower-resilience's breaker. No deadline
    /// and no balancer: a single endpoint, so this stack does less than ours.
    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn tower_resilience(bencher: Bencher, inner: Inner) {
        let breaker = ::tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
            .build()
            .expect("the default configuration is valid");
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new(Attempts(2)))
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)))
            .layer(breaker)
            .service(Echo(inner));
        bench_shared(bencher, stack);
    }
}

mod http_stack {
    //! The whole stack over `http::Request`s, with and without the per-attempt span of the
    //! `opentelemetry` feature (issue 11): deadline → retry (HTTP rules) → round robin
    //! (2 endpoints) → [attempt span →] breaker (HTTP classifier) → attempt timeout.
    //!
    //! - `without_span`, `with_span`: no `tracing` subscriber and no OpenTelemetry context,
    //!   what a user of the crate who does not trace pays for the layer (a disabled span).
    //! - `with_span_propagating`: the demo without `--otlp-endpoint`: no tracing-opentelemetry,
    //!   an SDK provider with no processor and a `ParentBased(AlwaysOff)` sampler, and the
    //!   caller's context attached, so each attempt makes a span id and writes a `traceparent`.
    //! - `with_span_exporting`: the demo with `--otlp-endpoint`: tracing-opentelemetry, every
    //!   span sampled and handed to the SDK's batch processor (its exporter does nothing;
    //!   serialising and sending happen on its own thread, not here).
    //!
    //! The subscriber cases run on one thread: the subscriber is set for the bench's thread.
    //! Both stacks go through `ServiceBuilder::option_layer`, so they differ by the layer alone.
    //! Setting a subscriber, even for one thread, makes every later `tracing` call site check
    //! for one, so the cases without a subscriber are only clean in a run of their own:
    //! `-- http_stack::without_span`, `-- http_stack::with_span --skip with_span_ --skip without`.

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
    use resilience::http::HttpRetryRules;
    use resilience::http::trace::AttemptSpanLayer;
    use resilience::{CircuitBreakerConfig, CircuitBreakerLayer, DeadlineLayer};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    type Request = http::Request<()>;
    type Response = http::Response<()>;

    fn to_request(_: Request) -> u64 {
        7
    }

    fn to_response(_: u64) -> Response {
        http::Response::new(())
    }

    fn stack(
        inner: Inner,
        traced: bool,
    ) -> impl Service<Request, Response = Response, Error = BoxError> + Clone + Send + Sync {
        let breaker = CircuitBreakerConfig::default();
        let endpoints = [0, 1].map(|key| {
            let endpoint = ServiceBuilder::new()
                .option_layer(traced.then(AttemptSpanLayer::new))
                .layer(
                    CircuitBreakerLayer::new(breaker.clone())
                        .with_classifier(resilience::http::HttpClassifier),
                )
                .layer(TimeoutLayer::new(Duration::from_secs(1)))
                .map_request(to_request as fn(Request) -> u64)
                .map_response(to_response as fn(u64) -> Response)
                .service(Echo(inner));
            (key, endpoint)
        });
        let policy = RetryPolicy::builder()
            .rules(HttpRetryRules)
            .deadline(Duration::from_secs(3))
            .build()
            .expect("a valid policy");
        ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(3)))
            .layer(RetryLayer::new(policy))
            .service(RoundRobin::new(endpoints))
    }

    fn get() -> Request {
        http::Request::get("http://127.0.0.1:8081/users/7")
            .body(())
            .expect("a valid request")
    }

    /// One call with a request made outside the timed part (building it parses the URI); the
    /// service clone is handed back so it is dropped outside too.
    fn call_http<S>((mut service, request): (S, Request)) -> (S, Response)
    where
        S: Service<Request, Response = Response>,
        S::Error: fmt::Debug,
    {
        let response = call(&mut service, divan::black_box(request));
        (service, response)
    }

    fn bench_http<S>(bencher: Bencher, service: S)
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync,
        S::Error: fmt::Debug,
    {
        bencher
            .with_inputs(|| (clone_for_this_thread(&service), get()))
            .bench_values(call_http);
    }

    /// Accepts every batch and does nothing with it.
    #[derive(Debug)]
    struct Discard;

    impl SpanExporter for Discard {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn without_span(bencher: Bencher, inner: Inner) {
        bench_http(bencher, stack(inner, false));
    }

    #[divan::bench(args = INNERS, threads = [1, 2])]
    fn with_span(bencher: Bencher, inner: Inner) {
        bench_http(bencher, stack(inner, true));
    }

    #[divan::bench(args = INNERS)]
    fn with_span_propagating(bencher: Bencher, inner: Inner) {
        use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};

        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .build();
        opentelemetry::global::set_tracer_provider(provider);
        // The request's context as the demo's server side makes it: the caller's trace, not
        // sampled, and a span id of this hop's.
        let caller = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::default(),
            true,
            Default::default(),
        ));
        let _attached = caller.attach();
        let service = stack(inner, true);
        bencher
            .with_inputs(|| (clone_for_this_thread(&service), get()))
            .bench_local_values(call_http);
    }

    #[divan::bench(args = INNERS)]
    fn with_span_exporting(bencher: Bencher, inner: Inner) {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        // As demo-kit installs it with an exporter.
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bench"))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false),
        );
        let _default = tracing::subscriber::set_default(subscriber);
        let service = stack(inner, true);
        bencher
            .with_inputs(|| (clone_for_this_thread(&service), get()))
            .bench_local_values(call_http);
        let _ = provider.shutdown();
    }
}
