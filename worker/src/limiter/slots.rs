//! Lending a worker's concurrency slot while a task sleeps through a provider's pause: the task
//! keeps its own permit (the runner owns it), so the slot is lent by adding a permit to the
//! worker's semaphore and taken back after the sleep by acquiring one and forgetting it. A
//! second semaphore, the waiting room, bounds how many slots are lent at once (one worker's
//! concurrency), so a long pause cannot pull the whole queue into sleeping tasks.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The worker's slots and its waiting room.
#[derive(Debug, Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    room: Arc<Semaphore>,
}

impl Slots {
    /// Lends slots of `permits` (the runner's semaphore), at most `room` at once.
    pub fn new(permits: Arc<Semaphore>, room: usize) -> Self {
        Self {
            permits,
            room: Arc::new(Semaphore::new(room)),
        }
    }

    /// Lends one slot while the waiting room has space; `None` when it is full (the sleeping
    /// task then keeps its slot).
    pub fn lend(&self) -> Option<Lent> {
        let seat = self.room.clone().try_acquire_owned().ok()?;
        self.permits.add_permits(1);
        Some(Lent {
            permits: self.permits.clone(),
            _seat: seat,
            returned: false,
        })
    }
}

/// A slot lent out; take it back with [`Lent::take_back`]. Dropped unreturned (its task was
/// cancelled while sleeping), it removes the extra permit anyway.
#[derive(Debug)]
pub struct Lent {
    permits: Arc<Semaphore>,
    _seat: OwnedSemaphorePermit,
    returned: bool,
}

impl Lent {
    /// Waits for a free slot and removes it, so the worker is back to its concurrency.
    pub async fn take_back(mut self) {
        if let Ok(p) = self.permits.acquire().await {
            p.forget();
        }
        self.returned = true;
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.returned || self.permits.forget_permits(1) == 1 {
            return;
        }
        // Every slot is busy: remove the next one that frees up.
        let permits = self.permits.clone();
        tokio::spawn(async move {
            if let Ok(p) = permits.acquire().await {
                p.forget();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lent_slot_comes_back_and_the_room_bounds_lending() {
        let permits = Arc::new(Semaphore::new(2));
        let slots = Slots::new(permits.clone(), 1);
        let own = permits.clone().try_acquire_owned().expect("a slot");
        let lent = slots.lend().expect("room for one");
        assert_eq!(
            permits.available_permits(),
            2,
            "the sleeping task's slot is free"
        );
        assert!(slots.lend().is_none(), "the room holds one");
        lent.take_back().await;
        assert_eq!(permits.available_permits(), 1);
        let lent = slots.lend().expect("room again");
        drop(lent);
        assert_eq!(permits.available_permits(), 1, "dropped unreturned");
        drop(own);
        assert_eq!(permits.available_permits(), 2);
    }
}
