//! The Lua scripts of `switchyard_shared::scripts` against a real Redis, one module per state
//! transition like the scripts themselves: each case seeds tasks through the wrappers, delivers
//! entries with a real `XREADGROUP`, and asserts the Redis state (task hash, stream, pending
//! list, delayed set, dead stream, events, stats) a script leaves, and what the reader
//! (`lookup.lua`) makes of it. The steps they share are in
//! [`env`].

mod env;

mod cancel;
mod complete;
mod enqueue;
mod extend;
mod fail;
mod lookup;
mod promote;
mod replay_dead;
mod requeue;
mod session_append;
mod start;
mod tenant_running;
