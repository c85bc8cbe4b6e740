//! The HTTP floor: the same hyper 1 HTTP/1.1 server set-up as windowkeeper's webhook listener
//! (multi-threaded tokio runtime, header read timeout, keep-alive, TCP_NODELAY), whose handler
//! reads the whole body and answers an empty 200. Nothing else: no routing, no verification,
//! no JSON, no Kafka. Usage: hyper-floor 127.0.0.1:PORT

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

async fn answer(request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    // Receive the body as a real handler must before it can act on it.
    let _ = request.into_body().collect().await;
    Ok(Response::new(Empty::new()))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("hyper-floor listening on {addr}");
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service_fn(answer));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
