//! Background work that lives as long as the service: the router's state holds the
//! [`Lifeline`], and every loop holds an [`Alive`] that resolves [`Alive::gone`] once the last
//! copy of the state is dropped (the server stopped, the monolith shut down, or a test dropped
//! the app). A task stopped this way stops between two awaits, exactly as if the process had
//! died there — which every service's background work is built to survive. (Work that must
//! finish what it has in hand at shutdown — event consumers — waits on the wiring's shutdown
//! instead, and its service's `Running` waits for it.)

use tokio::sync::watch;

/// Held by the service's state; dropping the last copy stops the background work.
#[derive(Debug)]
pub struct Lifeline(watch::Sender<()>);

/// Held by background work: tells when the service is gone.
#[derive(Debug, Clone)]
pub struct Alive(watch::Receiver<()>);

impl Lifeline {
    /// A new lifeline.
    pub fn new() -> Self {
        Self(watch::channel(()).0)
    }

    /// A watcher of this lifeline.
    pub fn alive(&self) -> Alive {
        Alive(self.0.subscribe())
    }
}

impl Default for Lifeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Alive {
    /// Resolves once the lifeline is dropped.
    pub async fn gone(&mut self) {
        // Nothing is ever sent: `changed` only returns, with an error, when the sender is gone.
        while self.0.changed().await.is_ok() {}
    }

    /// Whether the lifeline is still held.
    pub fn is_alive(&self) -> bool {
        self.0.has_changed().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_learn_when_the_lifeline_is_dropped() {
        let lifeline = Lifeline::new();
        let mut alive = lifeline.alive();
        assert!(alive.is_alive());
        let waiter = tokio::spawn(async move { alive.gone().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(lifeline);
        waiter.await.unwrap();
    }
}
