//! The `beacon` command: `serve`, `send`, `tail`, `query`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_intake::auth::Credentials;
use beacon_intake::body::Limits;
use beacon_intake::forward::ForwardConfig;
use beacon_intake::inspect::{self, TailOptions};
use beacon_intake::send::{self, SendAuth, SendOptions};
use beacon_intake::server::{self, Origins, ServeConfig, DEFAULT_LISTEN};
use beacon_intake::store::{SyncMode, DB_FILE};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Beacon: the intake server and tools to send and read events.
#[derive(Parser)]
#[command(name = "beacon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the intake: receive events on POST /v1/events and store them in SQLite (or forward them).
    Serve(ServeArgs),
    /// Send one event (from flags) or NDJSON events (from standard input) to an intake.
    Send(SendArgs),
    /// Print stored events, one line each, and follow new ones.
    Tail(TailArgs),
    /// Run a read-only SQL query on the store (table `events`) and print the result.
    Query(QueryArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Sync {
    /// A commit survives a power loss.
    Full,
    /// A commit survives a crash of the server, not of the machine.
    Normal,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BEACON_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory of the SQLite store (beacon.db).
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "beacon-data")]
    data_dir: PathBuf,
    /// Bearer tokens accepted (comma-separated in the environment variable).
    #[arg(
        long = "token",
        env = "BEACON_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// Basic-auth users accepted, as user:password.
    #[arg(
        long = "basic-auth",
        env = "BEACON_BASIC_AUTH",
        value_delimiter = ',',
        hide_env_values = true
    )]
    basic: Vec<String>,
    /// Public write keys accepted in the query string (?key=), for browsers.
    #[arg(
        long = "write-key",
        env = "BEACON_WRITE_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    write_keys: Vec<String>,
    /// Origins allowed to call from a browser (CORS), e.g. https://app.example.com, or *.
    #[arg(
        long = "allow-origin",
        env = "BEACON_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    origins: Vec<String>,
    /// Largest request body as received (compressed), in bytes.
    #[arg(long, env = "BEACON_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest body after gzip decompression, in bytes.
    #[arg(long, env = "BEACON_MAX_DECOMPRESSED_BYTES", default_value_t = 8 * 1024 * 1024)]
    max_decompressed_bytes: usize,
    /// Most items in one request.
    #[arg(long, env = "BEACON_MAX_ITEMS", default_value_t = 10_000)]
    max_items: usize,
    /// Largest item, in bytes of canonical JSON.
    #[arg(long, env = "BEACON_MAX_ITEM_BYTES", default_value_t = beacon::schema::DEFAULT_MAX_ITEM_BYTES)]
    max_item_bytes: usize,
    /// Items per second per key (token, user or write key); off when absent.
    #[arg(long, env = "BEACON_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Items waiting for the store before requests are shed with 503.
    #[arg(long, env = "BEACON_MAX_PENDING_ITEMS", default_value_t = 200_000)]
    max_pending_items: usize,
    /// SQLite durability of each commit.
    #[arg(long, env = "BEACON_SYNC", value_enum, default_value = "full")]
    sync: Sync,
    /// Proxy mode: forward valid events to this upstream intake URL instead of storing them.
    #[arg(long, env = "BEACON_FORWARD")]
    forward: Option<String>,
    /// Bearer token for the upstream intake.
    #[arg(long, env = "BEACON_FORWARD_TOKEN", hide_env_values = true)]
    forward_token: Option<String>,
    /// Most items the forward queue holds while the upstream is slow or down.
    #[arg(long, env = "BEACON_FORWARD_QUEUE_ITEMS", default_value_t = 100_000)]
    forward_queue_items: usize,
    /// Longest wait between two retries to the upstream, in milliseconds.
    #[arg(long, env = "BEACON_FORWARD_MAX_BACKOFF_MS", default_value_t = 30_000)]
    forward_max_backoff_ms: u64,
    /// Seconds to finish in-flight requests and flush the forward queue on SIGINT/SIGTERM.
    #[arg(long, env = "BEACON_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    shutdown_timeout: u64,
    #[cfg(feature = "kafka")]
    #[command(flatten)]
    kafka: beacon_intake::kafka::KafkaArgs,
}

#[derive(Args)]
struct SendArgs {
    /// The intake's events URL.
    #[arg(
        long,
        env = "BEACON_URL",
        default_value = "http://127.0.0.1:7070/v1/events"
    )]
    url: String,
    /// Bearer token.
    #[arg(long, env = "BEACON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Basic auth as user:password.
    #[arg(long = "basic-auth", env = "BEACON_BASIC", hide_env_values = true)]
    basic: Option<String>,
    /// Public write key (?key=).
    #[arg(long = "write-key", env = "BEACON_WRITE_KEY")]
    write_key: Option<String>,
    /// event_type of the event (with --name).
    #[arg(long = "type", default_value = "behavioral")]
    event_type: String,
    /// event_name of the event; without it, NDJSON events are read from standard input.
    #[arg(long)]
    name: Option<String>,
    /// service_name attribute.
    #[arg(long)]
    service: Option<String>,
    /// Seconds to deliver, retries included.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Attempts before giving up.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Attributes: key=value (numbers and true/false typed) or key:=json.
    attrs: Vec<String>,
}

#[derive(Args)]
struct TailArgs {
    /// Directory of the SQLite store.
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "beacon-data")]
    data_dir: PathBuf,
    /// Stored events to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: usize,
    /// Print the stored events and exit instead of following.
    #[arg(long)]
    no_follow: bool,
    /// Only events of this event_type.
    #[arg(long = "type")]
    event_type: Option<String>,
}

#[derive(Args)]
struct QueryArgs {
    /// Directory of the SQLite store.
    #[arg(long, env = "BEACON_DATA_DIR", default_value = "beacon-data")]
    data_dir: PathBuf,
    /// Print a JSON array of objects instead of a table.
    #[arg(long)]
    json: bool,
    /// One read-only SQL statement, e.g. "SELECT event_type, count(*) FROM events GROUP BY 1".
    sql: String,
}

fn serve(a: ServeArgs) -> Result<(), String> {
    let cfg = ServeConfig {
        listen: a.listen,
        data_dir: a.data_dir,
        credentials: Credentials::new(&a.tokens, &a.basic, &a.write_keys)?,
        origins: Origins::new(&a.origins),
        max_body_bytes: a.max_body_bytes,
        max_decompressed_bytes: a.max_decompressed_bytes,
        limits: Limits {
            max_items: a.max_items,
            max_item_bytes: a.max_item_bytes,
        },
        rate_limit: a.rate_limit,
        max_pending_items: a.max_pending_items,
        sync: match a.sync {
            Sync::Full => SyncMode::Full,
            Sync::Normal => SyncMode::Normal,
        },
        forward: a.forward.map(|url| ForwardConfig {
            url,
            token: a.forward_token,
            max_queue_items: a.forward_queue_items,
            max_backoff: Duration::from_millis(a.forward_max_backoff_ms),
        }),
        shutdown_timeout: Duration::from_secs(a.shutdown_timeout),
        #[cfg(feature = "kafka")]
        kafka: a.kafka.config()?,
    };
    #[cfg(feature = "kafka")]
    if cfg.kafka.is_some() && cfg.forward.is_some() {
        return Err("choose one sink: --kafka-brokers or --forward".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(server::run(cfg, server::shutdown_signal(), |s| {
        // A closed standard output must not stop the server: ignore write errors.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "beacon intake listening on http://{} ({})",
            s.addr, s.sink
        );
        let _ = writeln!(
            out,
            "POST http://{}/v1/events · GET /healthz · GET /metrics · Ctrl-C to stop",
            s.addr
        );
    }))?;
    eprintln!("beacon intake stopped");
    Ok(())
}

fn send_cmd(a: SendArgs) -> Result<(), String> {
    let events = match &a.name {
        Some(name) => vec![send::event_from_args(
            &a.event_type,
            name,
            a.service.as_deref(),
            &a.attrs,
        )?],
        None => {
            if !a.attrs.is_empty() {
                return Err(
                    "attributes need --name (without it, events are read from standard input)"
                        .into(),
                );
            }
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err("give --name, or pipe NDJSON events into standard input".into());
            }
            send::events_from_ndjson(stdin.lock())?
        }
    };
    let auth = match (a.token, a.basic, a.write_key) {
        (Some(t), _, _) => SendAuth::Bearer(t),
        (None, Some(b), _) => SendAuth::Basic(b),
        (None, None, Some(k)) => SendAuth::WriteKey(k),
        _ => SendAuth::None,
    };
    let summary = send::send(
        &events,
        &SendOptions {
            url: a.url,
            auth,
            timeout: Duration::from_secs(a.timeout),
            attempts: a.attempts,
        },
    )?;
    println!("{summary}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a),
        Command::Send(a) => send_cmd(a),
        Command::Tail(a) => inspect::tail(
            &a.data_dir.join(DB_FILE),
            &TailOptions {
                last: a.lines,
                follow: !a.no_follow,
                event_type: a.event_type,
                poll: Duration::from_millis(200),
            },
            &mut std::io::stdout().lock(),
        ),
        Command::Query(a) => inspect::query(
            &a.data_dir.join(DB_FILE),
            &a.sql,
            a.json,
            &mut std::io::stdout().lock(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon: {e}");
            ExitCode::FAILURE
        }
    }
}
