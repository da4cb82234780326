//! The process's lifecycle: the shutdown signal, the hard stop at the end of the drain, and the
//! tasks (calls, flushes) a shutdown waits for. Every long-lived task selects on these tokens.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shutdown signal and the tasks that must finish before the process exits.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    tasks: TaskTracker,
}

impl Lifecycle {
    /// Cancelled when the process starts to shut down; every long-lived task selects on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Tasks spawned here are waited for (up to the drain timeout) before the process exits.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Cancelled when the drain timeout is over: live calls must end now.
    pub fn hard_stop_token(&self) -> CancellationToken {
        self.hard_stop.clone()
    }

    pub fn is_draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Starts the shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Ends the drain: live calls must hang up now.
    pub fn stop_now(&self) {
        self.hard_stop.cancel();
    }
}
