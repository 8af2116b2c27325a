//! Behaviour of the retry policy inside tower's `Retry`, on a paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::retry::Retry;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::backoff::ExponentialBackoff;
use crate::balance::NoAvailableEndpoint;
use crate::circuit_breaker::{CircuitOpen, State};
use crate::error::BoxError;

/// Records when each attempt started, relative to `origin`, and answers with `answer`.
fn recording_service<F>(
    attempts: Arc<Mutex<Vec<Duration>>>,
    origin: Instant,
    answer: F,
) -> impl Service<
    u32,
    Response = u32,
    Error = BoxError,
    Future = BoxFuture<'static, Result<u32, BoxError>>,
> + Clone
where
    F: Fn(usize) -> Result<u32, BoxError> + Clone + Send + 'static,
{
    service_fn(move |request: u32| {
        let attempt = {
            let mut attempts = attempts.lock().unwrap();
            attempts.push(origin.elapsed());
            attempts.len()
        };
        let result = answer(attempt).map(|_| request);
        Box::pin(async move { result }) as BoxFuture<'static, _>
    })
}

fn fixed(delay_ms: u64) -> ExponentialBackoff {
    ExponentialBackoff::new(
        Duration::from_millis(delay_ms),
        Duration::from_millis(delay_ms),
    )
    .with_jitter(0.0)
    .with_multiplier(1.0)
}

#[tokio::test(start_paused = true)]
async fn stops_at_the_maximum_number_of_attempts() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), Instant::now(), |_| Err("down".into()));
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .backoff(fixed(10))
        .without_budget()
        .build()
        .unwrap();
    let error = Retry::new(policy.clone(), service)
        .oneshot(7)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "down",
        "the last upstream error comes back"
    );
    assert_eq!(attempts.lock().unwrap().len(), 4);
    assert_eq!(policy.metrics().retries, 3);
}

#[tokio::test(start_paused = true)]
async fn a_success_ends_the_retries() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), Instant::now(), |n| {
        if n < 2 { Err("down".into()) } else { Ok(0) }
    });
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(fixed(10))
        .build()
        .unwrap();
    assert_eq!(Retry::new(policy, service).oneshot(7).await.unwrap(), 7);
    assert_eq!(attempts.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_schedule_within_bounds() {
    let backoff = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(10))
        .with_jitter(1.0);
    let schedule = |seed| async move {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = recording_service(attempts.clone(), Instant::now(), |_| Err("down".into()));
        let policy = RetryPolicy::builder()
            .max_attempts(6)
            .backoff(backoff)
            .without_budget()
            .seed(seed)
            .build()
            .unwrap();
        Retry::new(policy, service).oneshot(1).await.unwrap_err();
        let starts = attempts.lock().unwrap().clone();
        starts
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .collect::<Vec<_>>()
    };
    let first = schedule(9).await;
    assert_eq!(first, schedule(9).await);
    assert_ne!(first, schedule(10).await, "another seed draws other delays");
    for (n, delay) in first.iter().enumerate() {
        let (low, high) = backoff.bounds(n as u32);
        assert!(
            low <= *delay && *delay <= high,
            "delay {n} = {delay:?} outside {low:?}..={high:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries_under_total_failure() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let service = service_fn(move |_: u32| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, BoxError>("down".into()) }
    });
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(fixed(1))
        .budget(RetryBudget::new(0.1, 0).unwrap())
        .build()
        .unwrap();
    let retrying = Retry::new(policy.clone(), service);
    for request in 0..100 {
        retrying.clone().oneshot(request).await.unwrap_err();
    }
    // Without a budget that would be 300 calls; with it, one retry per ten requests.
    assert_eq!(calls.load(Ordering::SeqCst), 110);
    assert_eq!(policy.metrics().retries, 10);
    // Every request ended on an empty budget: 90 after their first failure, and the 10 that
    // got a retry after their second.
    assert_eq!(policy.metrics().budget_exhausted, 100);
}

#[tokio::test(start_paused = true)]
async fn local_rejections_are_not_retried() {
    let rejections: [fn() -> BoxError; 2] = [
        || CircuitOpen::new("a".into(), State::Open, Some(Duration::from_secs(1))).into(),
        || NoAvailableEndpoint::new(2).into(),
    ];
    for rejection in rejections {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service =
            recording_service(attempts.clone(), Instant::now(), move |_| Err(rejection()));
        let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
        let error = Retry::new(policy.clone(), service)
            .oneshot(1)
            .await
            .unwrap_err();
        assert!(is_local_rejection(error.as_ref()));
        assert_eq!(attempts.lock().unwrap().len(), 1);
        assert_eq!(policy.metrics().retries, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_cannot_finish_before_the_deadline_is_not_started() {
    let origin = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), origin, |_| Err("down".into()));
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(
            ExponentialBackoff::new(Duration::from_millis(400), Duration::from_secs(10))
                .with_jitter(0.0),
        )
        .deadline(Duration::from_secs(1))
        .without_budget()
        .build()
        .unwrap();
    Retry::new(policy.clone(), service)
        .oneshot(1)
        .await
        .unwrap_err();
    // Attempts at 0 and 400 ms; the next backoff (800 ms) would end past the 1 s deadline.
    assert_eq!(
        *attempts.lock().unwrap(),
        [Duration::ZERO, Duration::from_millis(400)]
    );
    assert_eq!(
        origin.elapsed(),
        Duration::from_millis(400),
        "it returned at once instead of sleeping"
    );
    assert_eq!(policy.metrics().out_of_time, 1);
}

#[tokio::test(start_paused = true)]
async fn each_request_gets_its_own_deadline_and_attempt_count() {
    let origin = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), origin, |_| Err("down".into()));
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(fixed(300))
        .deadline(Duration::from_secs(1))
        .without_budget()
        .build()
        .unwrap();
    let retrying = Retry::new(policy, service);
    retrying.clone().oneshot(1).await.unwrap_err();
    retrying.clone().oneshot(2).await.unwrap_err();
    let ms: Vec<_> = attempts
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(ms, [0, 300, 600, 600, 900, 1200]);
}

/// Retries "refused" at once and free (it was never sent), "reset" at once within the budget,
/// and anything else after the backoff.
#[derive(Clone, Copy)]
struct ByMessage;

impl RetryRules<u32, u32, BoxError> for ByMessage {
    fn clone_request(&self, request: &u32) -> Option<u32> {
        Some(*request)
    }

    fn classify(&self, _: &u32, result: &Result<u32, BoxError>) -> RetryDecision {
        match result {
            Err(error) if error.to_string() == "refused" => RetryDecision::RetryNeverSent,
            Err(error) if error.to_string() == "reset" => RetryDecision::RetryAtOnce,
            Err(_) => RetryDecision::Retry,
            Ok(_) => RetryDecision::DoNotRetry,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_never_sent_is_retried_at_once_and_free() {
    let origin = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), origin, |attempt| match attempt {
        1 => Err("refused".into()),
        _ => Ok(0),
    });
    // A budget with nothing in it: a retry that had to pay would not be sent.
    let empty = RetryBudget::new(0.0, 0).unwrap();
    let policy = RetryPolicy::builder()
        .rules(ByMessage)
        .backoff(fixed(500))
        .budget(empty)
        .build()
        .unwrap();
    assert_eq!(
        Retry::new(policy.clone(), service)
            .oneshot(5)
            .await
            .unwrap(),
        5
    );
    assert_eq!(*attempts.lock().unwrap(), [Duration::ZERO, Duration::ZERO]);
    assert_eq!(policy.metrics().retries, 1);

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), origin, |attempt| match attempt {
        1 => Err("timed out".into()),
        _ => Ok(0),
    });
    let paying = RetryPolicy::builder()
        .rules(ByMessage)
        .backoff(fixed(500))
        .budget(RetryBudget::new(0.0, 0).unwrap())
        .build()
        .unwrap();
    Retry::new(paying.clone(), service)
        .oneshot(5)
        .await
        .unwrap_err();
    assert_eq!(attempts.lock().unwrap().len(), 1, "a sent request pays");
    assert_eq!(paying.metrics().budget_exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_is_retried_at_once_within_the_budget() {
    let origin = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let service = recording_service(attempts.clone(), origin, |attempt| match attempt {
        1 => Err("reset".into()),
        _ => Ok(0),
    });
    let policy = RetryPolicy::builder()
        .rules(ByMessage)
        .backoff(fixed(500))
        .budget(RetryBudget::new(0.0, 1).unwrap())
        .build()
        .unwrap();
    let retrying = Retry::new(policy.clone(), service);
    assert_eq!(retrying.clone().oneshot(5).await.unwrap(), 5);
    assert_eq!(*attempts.lock().unwrap(), [Duration::ZERO, Duration::ZERO]);

    let attempts_now = attempts.lock().unwrap().len();
    let again = recording_service(attempts.clone(), origin, |_| Err("reset".into()));
    Retry::new(policy.clone(), again)
        .oneshot(6)
        .await
        .unwrap_err();
    assert_eq!(
        attempts.lock().unwrap().len(),
        attempts_now + 1,
        "the budget's one token is spent: no second retry"
    );
    assert_eq!(policy.metrics().budget_exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_exact_at_small_ratios() {
    for (ratio, expected) in [(0.006, 60), (0.0004, 4)] {
        let service = service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
        let policy = RetryPolicy::builder()
            .max_attempts(2)
            .backoff(fixed(1))
            .budget(RetryBudget::new(ratio, 0).unwrap())
            .build()
            .unwrap();
        let retrying = Retry::new(policy.clone(), service);
        for request in 0..10_000 {
            retrying.clone().oneshot(request).await.unwrap_err();
        }
        assert_eq!(policy.metrics().retries, expected, "ratio {ratio}");
    }
}

#[test]
fn the_retry_after_cap_fits_inside_the_deadline() {
    let with_deadline = RetryPolicy::builder()
        .deadline(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(with_deadline.retry_after_cap(), Duration::from_millis(1500));
    let without = RetryPolicy::builder().build().unwrap();
    assert_eq!(without.retry_after_cap(), Duration::from_secs(5));
    let long_deadline = RetryPolicy::builder()
        .deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(long_deadline.retry_after_cap(), Duration::from_secs(5));
    let impossible = RetryPolicy::builder()
        .deadline(Duration::from_secs(3))
        .retry_after_cap(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert!(
        impossible.reason().contains("never be honoured"),
        "{impossible}"
    );
}

#[cfg(feature = "http")]
mod http_rules {
    use super::*;
    use crate::http::HttpRetryRules;
    use ::http::Method;
    use ::http::header::RETRY_AFTER;

    type Request = ::http::Request<String>;

    type Response = ::http::Response<()>;

    fn answer(status: u16, retry_after: Option<&'static str>) -> Result<Response, BoxError> {
        let mut builder = ::http::Response::builder().status(status);
        if let Some(value) = retry_after {
            builder = builder.header(RETRY_AFTER, value);
        }
        Ok(builder.body(()).unwrap())
    }

    /// Answers each attempt with the next scripted result, recording when it came.
    fn scripted<Req>(
        script: Vec<fn() -> Result<Response, BoxError>>,
        attempts: Arc<Mutex<Vec<Duration>>>,
    ) -> impl Service<
        Req,
        Response = Response,
        Error = BoxError,
        Future = BoxFuture<'static, Result<Response, BoxError>>,
    > + Clone {
        let origin = Instant::now();
        let script = Arc::new(script);
        service_fn(move |_: Req| {
            let n = {
                let mut attempts = attempts.lock().unwrap();
                attempts.push(origin.elapsed());
                attempts.len() - 1
            };
            let result = script[n.min(script.len() - 1)]();
            Box::pin(async move { result }) as BoxFuture<'static, _>
        })
    }

    fn policy() -> RetryPolicy<HttpRetryRules> {
        RetryPolicy::builder()
            .rules(HttpRetryRules)
            .max_attempts(3)
            .backoff(fixed(10))
            .retry_after_cap(Duration::from_secs(5))
            .without_budget()
            .build()
            .unwrap()
    }

    fn request(method: Method, key: Option<&'static str>) -> Request {
        let mut builder = ::http::Request::builder()
            .method(method)
            .uri("http://upstream/orders");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder.body(String::new()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_sets_the_wait() {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(
            vec![|| answer(503, Some("2")), || answer(200, None)],
            attempts.clone(),
        );
        let response = Retry::new(policy(), service)
            .oneshot(request(Method::GET, None))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            *attempts.lock().unwrap(),
            [Duration::ZERO, Duration::from_secs(2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_cap_is_returned_not_retried() {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(
            vec![|| answer(503, Some("60")), || answer(200, None)],
            attempts.clone(),
        );
        let response = Retry::new(policy(), service)
            .oneshot(request(Method::GET, None))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(attempts.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn post_is_retried_only_with_an_idempotency_key() {
        let failing =
            || vec![(|| Err("connection reset".into())) as fn() -> Result<Response, BoxError>];
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(failing(), attempts.clone());
        Retry::new(policy(), service)
            .oneshot(request(Method::POST, None))
            .await
            .unwrap_err();
        assert_eq!(
            attempts.lock().unwrap().len(),
            1,
            "a POST without a key is sent once"
        );

        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(failing(), attempts.clone());
        Retry::new(policy(), service)
            .oneshot(request(Method::POST, Some("order-1")))
            .await
            .unwrap_err();
        assert_eq!(
            attempts.lock().unwrap().len(),
            3,
            "with a key it may be retried"
        );

        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(failing(), attempts.clone());
        Retry::new(policy(), service)
            .oneshot(request(Method::DELETE, None))
            .await
            .unwrap_err();
        assert_eq!(attempts.lock().unwrap().len(), 3, "DELETE is idempotent");
    }

    #[cfg(feature = "reqwest")]
    #[tokio::test(start_paused = true)]
    async fn a_streaming_body_is_sent_once_and_counted() {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let service = scripted(vec![|| answer(503, None)], attempts.clone());
        let mut streaming = reqwest::Request::new(Method::PUT, "http://u/orders".parse().unwrap());
        let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![Ok(b"chunk")];
        *streaming.body_mut() = Some(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
        let policy = policy();
        let response = Retry::new(policy.clone(), service)
            .oneshot(streaming)
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(attempts.lock().unwrap().len(), 1);
        assert_eq!(policy.metrics().not_cloneable, 1);
    }
}
