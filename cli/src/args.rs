//! The command line, declared with clap's derive.

use clap::{Args, Parser, Subcommand};

/// `sy`: the switchyard command line. Talks only to a dispatcher's HTTP API.
///
/// Exit codes: 0 ok; 1 the server refused (4xx other than 404, 5xx); 2 usage; 3 dispatcher
/// unreachable; 4 not found; 5 the task did not succeed (`enqueue --wait`, `chat`).
#[derive(Debug, Parser)]
#[command(
    name = "sy",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 ok; 1 the server refused (4xx other than 404, 5xx); 2 usage; \
                  3 dispatcher unreachable; 4 not found; 5 the task did not succeed."
)]
pub struct Cli {
    /// The dispatcher's base URL.
    #[arg(
        long,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub url: String,
    /// The bearer token (`ROOT_NODE_SECRET`, or a tenant key).
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON for scripts instead of tables (one object per line for streams).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every queue: depth, waiting, running, delayed, dead, paused.
    Queues,
    /// Every worker: status, queues, running tasks, counters, last heartbeat.
    Workers,
    /// One task's record.
    Task {
        /// Task id.
        id: String,
    },
    /// Enqueue a tool or chat task.
    Enqueue(Enqueue),
    /// Chat: streams the answer as it is written; keeps one session across turns (a message
    /// per line on stdin when MESSAGE is absent).
    Chat {
        /// The message (absent: read one per line from stdin).
        message: Option<String>,
        /// Continue this session (default: a new one).
        #[arg(long)]
        session: Option<String>,
        /// Model (routed by the dispatcher's MODEL_ROUTES).
        #[arg(long)]
        model: Option<String>,
        /// System prompt.
        #[arg(long)]
        system: Option<String>,
    },
    /// Dead letters.
    Dead {
        /// ls, retry ID or retry-all.
        #[command(subcommand)]
        action: Dead,
    },
    /// Pause a queue: it keeps accepting tasks, workers take no new ones from it.
    Pause {
        /// Queue name.
        queue: String,
    },
    /// Resume a paused queue.
    Resume {
        /// Queue name.
        queue: String,
    },
    /// Live events of finished tasks, until interrupted (or --count events).
    Tail {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Tenant keys (admin).
    Tenants {
        /// ls, create or revoke.
        #[command(subcommand)]
        action: Tenants,
    },
}

/// `sy enqueue`.
#[derive(Debug, Args)]
pub struct Enqueue {
    /// tool or chat.
    #[command(subcommand)]
    pub what: EnqueueWhat,
    /// Queue (default: the kind's).
    #[arg(long, global = true)]
    pub queue: Option<String>,
    /// Attempts before the task goes dead.
    #[arg(long, global = true)]
    pub max_attempts: Option<u64>,
    /// Timeout of one attempt, ms.
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// Run no earlier than this many ms from now.
    #[arg(long, global = true)]
    pub delay_ms: Option<u64>,
    /// Idempotency key.
    #[arg(long, global = true)]
    pub idempotency_key: Option<String>,
    /// Wait for the end (up to --wait-secs) and print the finished task.
    #[arg(long, global = true)]
    pub wait: bool,
    /// How long --wait waits, seconds.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    pub wait_secs: u64,
}

/// What `sy enqueue` enqueues.
#[derive(Debug, Subcommand)]
pub enum EnqueueWhat {
    /// A tool task: `sy enqueue tool echo --args '{"a":1}'`.
    Tool {
        /// The tool.
        tool: String,
        /// Its arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// A chat task: `sy enqueue chat "hello" --session s1`.
    Chat {
        /// The message.
        message: String,
        /// Session id.
        #[arg(long)]
        session: Option<String>,
        /// Model.
        #[arg(long)]
        model: Option<String>,
    },
}

/// `sy dead …`.
#[derive(Debug, Subcommand)]
pub enum Dead {
    /// List dead letters, newest first.
    Ls {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Queue one dead task again with a fresh attempt budget.
    Retry {
        /// Task id.
        id: String,
    },
    /// Queue every dead task again (asks for confirmation unless --yes).
    RetryAll {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
}

/// `sy tenants …`.
#[derive(Debug, Subcommand)]
pub enum Tenants {
    /// List tenants.
    Ls,
    /// Create a tenant; its key is shown once.
    Create {
        /// Name.
        name: String,
        /// Scopes, comma-separated: submit, read, admin.
        #[arg(long, value_delimiter = ',', default_value = "submit")]
        scopes: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Tasks running at once.
        #[arg(long)]
        max_running: Option<u64>,
    },
    /// Revoke a tenant's key.
    Revoke {
        /// Tenant id.
        id: String,
    },
}
