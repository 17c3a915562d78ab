//! The server application (`Application`): binds, serves the HTTP API, and runs the
//! background workers (`stockpool-worker`) beside it until a shutdown signal. Every task
//! it starts is tracked and awaited.

use std::future::Future;
use std::net::SocketAddr;
use stockpool_store::Storage;
use tokio::net::TcpListener;

pub struct Application {
    store: Storage,
    listener: TcpListener,
    address: SocketAddr,
    workers: stockpool_worker::WorkerOptions,
    /// The workers' clock: the wall clock unless a test moves it on.
    worker_clock: stockpool_store::Clock,
}

impl Application {
    /// Binds `listen` (port 0 picks a free port).
    pub async fn build(store: Storage, listen: &str) -> std::io::Result<Application> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
        let address = listener.local_addr()?;
        Ok(Application {
            store,
            listener,
            address,
            workers: stockpool_worker::WorkerOptions::default(),
            worker_clock: stockpool_store::system_clock(),
        })
    }

    /// The same application whose workers run with `options` (tests shorten timeouts).
    pub fn with_worker_options(mut self, options: stockpool_worker::WorkerOptions) -> Application {
        self.workers = options;
        self
    }

    /// The same application whose workers read time from `clock`. It must move on by
    /// itself (dispatchers pace pushes by it): tests give the wall clock plus however far
    /// they moved the server on, so that a period of minutes passes at once.
    pub fn with_worker_clock(mut self, clock: stockpool_store::Clock) -> Application {
        self.worker_clock = clock;
        self
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then drains requests and stops the workers.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let workers =
            stockpool_worker::Workers::start_with(self.store.clone(), self.worker_clock.clone(), self.workers)
                .map_err(|e| std::io::Error::other(format!("cannot start the workers: {e}")))?;
        let intake = stockpool_worker::intake::Intake::new(self.store.clone())
            .map_err(|e| std::io::Error::other(format!("cannot start the webhook intake: {e}")))?;
        let router = crate::router(self.store.clone(), intake);
        let served = crate::serve::serve(self.listener, router, shutdown).await;
        workers.stop().await;
        served
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
