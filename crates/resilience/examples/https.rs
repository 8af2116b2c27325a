//! Run with `cargo run -p resilience --example https --features reqwest`.
//!
//! `ResilientClient` over https: a rustls server on 127.0.0.1 with a certificate made at start
//! (rcgen), and a reqwest client that trusts that certificate and nothing else, handed to the
//! builder with `ResilientClientBuilder::client`. A plain client that does not trust it is
//! refused, so the answer really went through a verified TLS session.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use resilience::BoxError;
use resilience::http::ResilientClient;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // A certificate for the address the server listens on, valid for this run only.
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let certificate = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));

    // The provider is named rather than taken from the process default: reqwest's rustls
    // feature turns on aws-lc-rs, and naming it keeps this working if another crate in the
    // build turns on ring as well (two providers and no default make rustls refuse to guess).
    let mut tls = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                // A client that rejects the certificate closes the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let body = format!("hello over TLS, {}", request.uri().path());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("https://{addr}");
    println!("serving https on {url}");

    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&certificate)?])
        .build()?;
    let client = ResilientClient::builder("secure")
        .endpoint(url.as_str())
        .client(trusting)
        .attempt_timeout(Duration::from_secs(2))
        .deadline(Duration::from_secs(5))
        .build()?;
    let response = client
        .execute(client.request(reqwest::Method::GET, "/users/1").build()?)
        .await?;
    println!(
        "https answer: {} {:?}",
        response.status(),
        String::from_utf8_lossy(response.body())
    );

    // The default client knows only the system's roots, not this run's certificate.
    match reqwest::Client::new().get(&url).send().await {
        Ok(response) => {
            return Err(format!(
                "an untrusted certificate was accepted: {}",
                response.status()
            )
            .into());
        }
        Err(error) => println!("without the test root: refused ({error})"),
    }

    server.abort();
    // Aborted on purpose: its "cancelled" error is the expected outcome.
    let _ = server.await;
    Ok(())
}
