//! The server application (`Application`): binds, serves the HTTP API, and runs the deadline sweeper,
//! until a shutdown signal. Every task it starts is tracked and awaited.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use stockpool_store::Store;
use tokio::net::TcpListener;

/// How often expired order requests and unpaid acceptances are swept (SPEC: at least
/// once a second).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

pub struct Application {
    store: Store,
    listener: TcpListener,
    address: SocketAddr,
}

impl Application {
    /// Binds `listen` (port 0 picks a free port).
    pub async fn build(store: Store, listen: &str) -> std::io::Result<Application> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
        let address = listener.local_addr()?;
        Ok(Application { store, listener, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then stops the sweeper and drains requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let store = self.store.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = store.sweep_due().await {
                            tracing::warn!(error = %e, "deadline sweep failed; retrying next tick");
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
        });
        let router = crate::router(self.store.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await;
        if let Err(e) = sweeper.await {
            tracing::error!(error = %e, "the sweeper task panicked");
        }
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
