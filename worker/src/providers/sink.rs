//! Where a backend hands each piece of its answer the moment it arrives (a text delta or a piece
//! of a tool call): a channel to the task's output writer (or nowhere), plus the one fact the
//! fallback logic needs: whether any of this attempt's answer went out yet, after which a
//! failure may no longer be retried or passed on silently.

use std::sync::atomic::{AtomicBool, Ordering};

use switchyard_shared::completion::ToolCallDelta;
use tokio::sync::mpsc;

/// One piece of an answer, in the order the provider sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// More text.
    Text(String),
    /// A piece of a tool call.
    ToolCall(ToolCallDelta),
}

/// The receiving end of a [`Sink`]: pieces in the order they arrived.
pub type Deltas = mpsc::UnboundedReceiver<Piece>;

/// Receives the answer pieces of one attempt.
#[derive(Debug, Default)]
pub struct Sink {
    tx: Option<mpsc::UnboundedSender<Piece>>,
    sent: AtomicBool,
}

impl Sink {
    /// A sink that keeps nothing but whether anything was sent.
    pub fn discard() -> Self {
        Self::default()
    }

    /// A sink and the receiver of its pieces. Unbounded: a writer drains it continuously, and an
    /// attempt's answer is bounded by the provider's.
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

    /// Hands on a text delta (empty ones are skipped).
    pub fn send(&self, text: &str) {
        if !text.is_empty() {
            self.pass(Piece::Text(text.to_owned()));
        }
    }

    /// Hands on a piece of a tool call (one with neither id, name nor arguments is skipped).
    pub fn send_tool_call(&self, delta: ToolCallDelta) {
        if delta.id.is_some() || delta.name.is_some() || !delta.arguments.is_empty() {
            self.pass(Piece::ToolCall(delta));
        }
    }

    fn pass(&self, piece: Piece) {
        self.sent.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            // A receiver gone (the writer stopped) loses nothing the result does not hold.
            let _ = tx.send(piece);
        }
    }

    /// Whether any of the answer went out.
    pub fn has_sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }
}
