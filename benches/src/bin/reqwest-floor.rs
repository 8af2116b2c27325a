//! The least a reqwest-based gateway can do per request: a hyper HTTP/1 server that hands each
//! `GET /api/users/{id}` (round robin over the users replicas) or `GET /api/orders/{id}` to a
//! `reqwest::Client` as `/users/{id}` or `/orders/{id}`, and answers with the upstream's status,
//! content type and body. No API key, rate limit, metrics, request id, envelope, retry, breaker
//! or timeout.
//!
//! It exists to be measured beside the gateway (`proxies --gateway`, `instructions --gateway`):
//! what it costs over nginx is what hyper's server and reqwest cost before any gateway feature,
//! so it bounds how close to nginx a gateway that keeps reqwest can get.
//!
//! It forwards through the gateway's own reqwest configuration, [`demo_kit::proxy_client`], so
//! that a setting that makes a proxy faster raises this floor too. `--without SETTING` leaves
//! one of its settings out and `--reqwest-default` uses `reqwest::Client::new()`, to measure
//! what each setting buys.
//!
//! It takes the gateway's command line as the benches start it. The flags that configure
//! features it does not have (`--no-spawn`, `--api-key`, `--rate-limit`, `--rate-burst`,
//! `--health-path`) are accepted and ignored, so the benches' gateway command runs it unchanged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use clap::Parser;
use demo_kit::proxy_client::{Setting, proxy_client_without};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// The same allocator as the gateway's, so the two differ by their work, not by malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    about = "A bare hyper server in front of a reqwest client: the floor of a reqwest gateway"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The users replicas' base URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    users: Vec<String>,
    /// The orders service's base URL.
    #[arg(long)]
    orders: String,
    /// Accepted for the gateway's command line; nothing is spawned either way.
    #[arg(long)]
    no_spawn: bool,
    /// Accepted for the gateway's command line; not checked.
    #[arg(long)]
    api_key: Option<String>,
    /// Accepted for the gateway's command line; nothing is limited.
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Accepted for the gateway's command line; nothing is limited.
    #[arg(long)]
    rate_burst: Option<u64>,
    /// Accepted for the gateway's command line; nothing is checked.
    #[arg(long)]
    health_path: Option<String>,
    /// Leaves these settings of the proxy client out (comma-separated: no-retries,
    /// no-redirects, no-proxy, nodelay, idle-pool).
    #[arg(long, value_delimiter = ',', value_parser = setting)]
    without: Vec<Setting>,
    /// Forwards through `reqwest::Client::new()` instead of the proxy client.
    #[arg(long, conflicts_with = "without")]
    reqwest_default: bool,
}

/// Parses a [`Setting`] by its name.
fn setting(name: &str) -> Result<Setting, String> {
    Setting::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Setting::ALL.iter().map(|s| s.name()).collect();
        format!("no such setting; one of: {}", names.join(", "))
    })
}

struct Upstreams {
    client: reqwest::Client,
    users: Vec<String>,
    orders: String,
    turn: AtomicUsize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One CPU (the benches pin it) gets the current-thread scheduler, as the gateway does.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let outcome = builder
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))
        .and_then(|runtime| runtime.block_on(serve(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("reqwest-floor: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, then returns (cachegrind writes its counts on a normal exit).
async fn serve(args: Args) -> Result<(), String> {
    let client = if args.reqwest_default {
        reqwest::Client::new()
    } else {
        proxy_client_without(&args.without)
            .map_err(|err| format!("cannot build the client: {err}"))?
    };
    let upstreams = Arc::new(Upstreams {
        client,
        users: args.users,
        orders: args.orders,
        turn: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|err| format!("cannot watch SIGTERM: {err}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|err| format!("cannot watch SIGINT: {err}"))?;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    eprintln!("reqwest-floor: accept failed: {err}");
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        let upstreams = Arc::clone(&upstreams);
        tokio::spawn(async move {
            let service = service_fn(move |request| relay(Arc::clone(&upstreams), request));
            // A client that goes away mid-request is not this bench's concern.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn relay(
    upstreams: Arc<Upstreams>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let url = if let Some(id) = path.strip_prefix("/api/users/") {
        let turn = upstreams.turn.fetch_add(1, Ordering::Relaxed) % upstreams.users.len();
        format!("{}/users/{id}", upstreams.users[turn])
    } else if let Some(id) = path.strip_prefix("/api/orders/") {
        format!("{}/orders/{id}", upstreams.orders)
    } else {
        return Ok(answer(StatusCode::NOT_FOUND, None, Bytes::new()));
    };
    let upstream = match upstreams.client.get(url).send().await {
        Ok(upstream) => upstream,
        Err(_) => return Ok(answer(StatusCode::BAD_GATEWAY, None, Bytes::new())),
    };
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    Ok(match upstream.bytes().await {
        Ok(body) => answer(status, content_type, body),
        Err(_) => answer(StatusCode::BAD_GATEWAY, None, Bytes::new()),
    })
}

fn answer(
    status: StatusCode,
    content_type: Option<header::HeaderValue>,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}
