//! Admission to the database: at most as many requests use it at once as
//! the pool has connections; a bounded number wait, served in turn client
//! by client (round robin over client addresses), so one client's flood of
//! expensive misses cannot starve everyone else's cheap ones; past that,
//! and past the request's deadline, the request is refused at once (503
//! with `Retry-After`) instead of joining a growing queue. Cache hits and
//! 304s never come here.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Who asks: requests are served in turn per client.
pub type Client = IpAddr;

#[derive(Clone)]
pub struct Gate {
    inner: Arc<Mutex<Queue>>,
}

struct Queue {
    capacity: usize,
    /// Connections not in use.
    free: usize,
    max_waiting: usize,
    waiting: usize,
    /// Waiters per client, in arrival order.
    queues: HashMap<Client, VecDeque<oneshot::Sender<Permit>>>,
    /// Clients with waiters, in the order they are served.
    turns: VecDeque<Client>,
}

/// A right to use the database; handed to the next waiter when dropped.
pub struct Permit {
    gate: Option<Gate>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This many requests (`max_waiting`) wait already.
    Full(usize),
    /// The deadline passed while waiting.
    Deadline,
}

impl Gate {
    /// `capacity` requests at once (the pool's connections), `max_waiting`
    /// more waiting.
    pub fn new(capacity: usize, max_waiting: usize) -> Gate {
        Gate {
            inner: Arc::new(Mutex::new(Queue {
                capacity,
                free: capacity,
                max_waiting,
                waiting: 0,
                queues: HashMap::new(),
                turns: VecDeque::new(),
            })),
        }
    }

    /// Waits for a turn until `deadline`.
    pub async fn admit(&self, client: Client, deadline: Instant) -> Result<Permit, Refused> {
        let receiver = {
            let mut queue = self.inner.lock().expect("gate lock");
            if queue.free > 0 {
                queue.free -= 1;
                return Ok(self.permit());
            }
            if queue.waiting >= queue.max_waiting {
                return Err(Refused::Full(queue.waiting));
            }
            let (sender, receiver) = oneshot::channel();
            queue.waiting += 1;
            match queue.queues.get_mut(&client) {
                Some(waiters) => waiters.push_back(sender),
                None => {
                    queue.queues.insert(client, VecDeque::from([sender]));
                    queue.turns.push_back(client);
                }
            }
            receiver
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            client,
            receiver: Some(receiver),
        };
        let receiver = waiting.receiver.as_mut().expect("set above");
        match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(permit)) => {
                waiting.receiver = None;
                Ok(permit)
            }
            // a permit sent after the deadline goes back when the receiver drops
            _ => Err(Refused::Deadline),
        }
    }

    /// Drops the waiters of `client` that gave up, so they hold no place.
    fn forget_gone(&self, client: Client) {
        let mut queue = self.inner.lock().expect("gate lock");
        let Some(waiters) = queue.queues.get_mut(&client) else {
            return;
        };
        let before = waiters.len();
        waiters.retain(|sender| !sender.is_closed());
        let gone = before - waiters.len();
        if waiters.is_empty() {
            queue.queues.remove(&client);
            queue.turns.retain(|c| *c != client);
        }
        queue.waiting -= gone;
    }

    fn permit(&self) -> Permit {
        Permit {
            gate: Some(self.clone()),
        }
    }

    /// Hands a released connection to the next client in turn, or frees it.
    fn release(&self) {
        let mut queue = self.inner.lock().expect("gate lock");
        while let Some(client) = queue.turns.pop_front() {
            let Some(waiters) = queue.queues.get_mut(&client) else {
                continue;
            };
            let next = waiters.pop_front();
            let more = !waiters.is_empty();
            if more {
                queue.turns.push_back(client);
            } else {
                queue.queues.remove(&client);
            }
            let Some(sender) = next else { continue };
            queue.waiting -= 1;
            match sender.send(self.permit()) {
                Ok(()) => return,
                // the waiter gave up: its permit comes back through drop,
                // which must not take this lock, so forget it and go on
                Err(mut permit) => permit.gate = None,
            }
        }
        queue.free += 1;
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.inner.lock().expect("gate lock").waiting
    }

    /// Requests using the database now, and at most.
    pub fn in_use(&self) -> (usize, usize) {
        let queue = self.inner.lock().expect("gate lock");
        (queue.capacity - queue.free, queue.capacity)
    }
}

/// A request in the queue. If it leaves without a permit (its deadline
/// passed, or its client hung up and the request was dropped), its place
/// is given up at once rather than when its turn comes.
struct Waiting {
    gate: Gate,
    client: Client,
    /// `None` once admitted.
    receiver: Option<oneshot::Receiver<Permit>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            drop(receiver);
            self.gate.forget_gone(self.client);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(n: u8) -> Client {
        IpAddr::from([127, 0, 0, n])
    }

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn waiters_are_served_client_by_client_and_the_queue_is_bounded() {
        let gate = Gate::new(1, 3);
        let held = gate.admit(client(1), later(1000)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // client 1 queues two requests, then client 2 one
        for (n, who) in [(1, 1), (2, 1), (3, 2)] {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = gate.admit(client(who), later(1000)).await.unwrap();
                order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(gate.waiting(), 3);
        assert_eq!(
            gate.admit(client(3), later(1000)).await.err(),
            Some(Refused::Full(3)),
            "a full queue refuses at once"
        );
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [1, 3, 2],
            "client 2 is served before client 1's second request"
        );
        assert_eq!(gate.waiting(), 0);
        let again = gate.admit(client(1), later(10)).await;
        assert!(again.is_ok(), "the connection came back");
    }

    #[tokio::test]
    async fn a_waiter_past_its_deadline_gives_its_turn_up() {
        let gate = Gate::new(1, 10);
        let held = gate.admit(client(1), later(1000)).await.unwrap();
        let late = gate.admit(client(2), later(20)).await;
        assert_eq!(late.err(), Some(Refused::Deadline));
        drop(held);
        let _again = gate.admit(client(3), later(10)).await.unwrap();
        assert_eq!(gate.waiting(), 0, "the late waiter left no place behind");
        assert!(
            gate.admit(client(3), later(10)).await.is_err(),
            "one connection, one permit"
        );
    }
}
