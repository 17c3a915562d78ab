//! stockpool-worker: the tasks that run beside the HTTP API, each at its own pace.
//!
//! `Workers::start` spawns every background task on the caller's runtime and keeps its
//! handle; `Workers::stop` tells them all to stop and awaits each one, so no task outlives
//! the server and none is fire-and-forget. Today that is the deadline sweeper
//! (`sweeper.rs`) and the dispatchers that deliver pushes (`dispatch.rs`); pollers and
//! reconciliation join them here. The webhook intake (`intake.rs`) lives here too: it
//! joins the store and the channels' connectors the same way, for the HTTP route and
//! `stockpool inbox replay`.
//!
//! Workers know the store's handle and its commands, never SQL or a channel's HTTP.

pub mod dispatch;
pub mod intake;
pub mod sweeper;

use stockpool_channels::StoreSettings;
use stockpool_core::{Schedule, Store};
use stockpool_store::model::StoreExtra;
use stockpool_store::{Clock, NodeId, Storage, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a store's connector is built from: the store's code and schedule with its
/// settings (the sealed secret and credentials already opened by the workspace load).
pub fn store_settings(store: &Store, extra: StoreExtra) -> StoreSettings {
    StoreSettings {
        code: store.code.clone(),
        url: extra.url,
        base_url: extra.base_url,
        secret: extra.secret,
        credentials: extra.credentials,
        push_rate_per_second: extra.push_rate_per_second,
        every_minutes: match store.schedule {
            Schedule::EveryMinutes(n) => Some(n),
            Schedule::Realtime => None,
        },
    }
}

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Channels(#[from] stockpool_channels::ConfigError),
    #[error("no node id: {0}")]
    Node(#[from] StoreError),
}

/// What a server may tune about its workers; production runs the defaults, and the fault
/// tests shorten the timeouts so that a receiver that never answers costs them little.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// See `stockpool_channels::CONNECT_TIMEOUT`.
    pub connect_timeout: std::time::Duration,
    /// See `stockpool_channels::REQUEST_TIMEOUT`.
    pub request_timeout: std::time::Duration,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            connect_timeout: stockpool_channels::CONNECT_TIMEOUT,
            request_timeout: stockpool_channels::REQUEST_TIMEOUT,
        }
    }
}

/// The background tasks of one server process.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    node: NodeId,
}

impl Workers {
    /// Starts every background task for `store` as a new node (push leases name it; its
    /// calls to channels carry it in `X-Stockpool-Node`), pacing pushes by `clock`.
    pub fn start(store: Storage, clock: Clock) -> Result<Workers, StartError> {
        Workers::start_with(store, clock, WorkerOptions::default())
    }

    /// [`Workers::start`] with `options` instead of the defaults.
    pub fn start_with(store: Storage, clock: Clock, options: WorkerOptions) -> Result<Workers, StartError> {
        let (stop, stopped) = watch::channel(false);
        // Jitter differs from run to run; within a run it is a pure function of the seed.
        let jitter_seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id());
        let node = NodeId::generate()?;
        let http = stockpool_channels::http_client_for_node_with(
            node.as_str(),
            stockpool_channels::ClientTimeouts { connect: options.connect_timeout, request: options.request_timeout },
        )?;
        tracing::info!(node = %node, "this process is node {node}");
        let shared = dispatch::Shared {
            store: store.clone(),
            intake: intake::Intake::with_client(store.clone(), http.clone()),
            http,
            clock,
            jitter_seed,
            node: node.clone(),
            request_timeout: options.request_timeout,
        };
        let tasks = vec![
            ("deadline sweeper", tokio::spawn(sweeper::run(store, stopped.clone()))),
            ("dispatchers", tokio::spawn(dispatch::run(shared, stopped))),
        ];
        Ok(Workers { stop, tasks, node })
    }

    /// This process's node id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Tells every task to stop and waits for each to finish its current step.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "a background task panicked");
            }
        }
    }
}
