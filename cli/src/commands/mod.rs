//! The commands, one file per group; [`run`] sends each to its function.

mod chat;
mod dead;
mod queues;
mod tail;
mod task;
mod tenants;
mod workers;

use crate::args::{Cli, Command};
use crate::client::{CliError, Client};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let client = Client::new(&cli.url, cli.token.clone())?;
    let json = cli.json;
    match cli.command {
        Command::Queues => queues::list(&client, json).await,
        Command::Pause { queue } => queues::set_paused(&client, &queue, true, json).await,
        Command::Resume { queue } => queues::set_paused(&client, &queue, false, json).await,
        Command::Workers => workers::list(&client, json).await,
        Command::Task { id } => task::show(&client, &id, json).await,
        Command::Enqueue(e) => task::enqueue(&client, e, json).await,
        Command::Chat {
            message,
            session,
            model,
            system,
        } => {
            let opts = chat::Options {
                session,
                model,
                system,
            };
            chat::run(&client, message, opts, json).await
        }
        Command::Dead { action } => dead::run(&client, action, json).await,
        Command::Tail { queue, count } => tail::run(&client, queue.as_deref(), count, json).await,
        Command::Tenants { action } => tenants::run(&client, action, json).await,
    }
}

/// `s` as one URL path segment: everything but RFC 3986's unreserved characters escaped, so an
/// id or name can never reach another route.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `s` as a query value (same escaping as a path segment).
pub fn query_value(s: &str) -> String {
    segment(s)
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_segment_cannot_leave_its_place_in_the_path() {
        assert_eq!(segment("tool-01J"), "tool-01J");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
