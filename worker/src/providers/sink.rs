//! Where a backend hands each text delta the moment it arrives: a channel to the task's output
//! writer (or nowhere), plus the one fact the fallback logic needs: whether any text of this
//! attempt went out yet, after which a failure may no longer be retried or passed on silently.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

/// The receiving end of a [`Sink`]: deltas in the order they arrived.
pub type Deltas = mpsc::UnboundedReceiver<String>;

/// Receives the text deltas of one attempt.
#[derive(Debug, Default)]
pub struct Sink {
    tx: Option<mpsc::UnboundedSender<String>>,
    sent: AtomicBool,
}

impl Sink {
    /// A sink that keeps nothing but whether text was sent.
    pub fn discard() -> Self {
        Self::default()
    }

    /// A sink and the receiver of its deltas. Unbounded: a writer drains it continuously, and an
    /// attempt's text is bounded by the provider's answer.
    pub fn channel() -> (Self, Deltas) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx: Some(tx),
                sent: AtomicBool::new(false),
            },
            rx,
        )
    }

    /// Hands on a delta (empty ones are skipped).
    pub fn send(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.sent.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            // A receiver gone (the writer stopped) loses nothing the result does not hold.
            let _ = tx.send(text.to_owned());
        }
    }

    /// Whether any text went out.
    pub fn has_sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }
}
