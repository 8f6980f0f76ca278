//! A real Kafka-protocol broker for tests, examples and benchmarks (features `kafka` and
//! `testing`): [`TansuBroker`] runs `tansu` (an Apache-Kafka-compatible broker in Rust, with
//! in-memory storage) on a free port of 127.0.0.1 and kills it when dropped; [`read_all`]
//! reads topics back with an rdkafka consumer.
//!
//! `tansu` must be installed (`cargo install tansu --locked --features dynostore`); it is
//! looked for in `$BEACON_TANSU`, then on `PATH`, then in `~/.cargo/bin`. A missing `tansu`
//! is an error, never a silent skip.

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// A `tansu` broker process on 127.0.0.1 with in-memory storage.
///
/// Storage is memory only: [`TansuBroker::restart`] brings back the same address and the
/// same topics, empty.
#[derive(Debug)]
pub struct TansuBroker {
    child: Option<Child>,
    port: u16,
    topics: Vec<(String, u32)>,
    log: PathBuf,
}

impl TansuBroker {
    /// Starts a broker on a free port and waits (up to 60 s) until it accepts connections.
    pub fn start() -> Result<TansuBroker, String> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("beacon-tansu-{port}.log"));
        let mut broker = TansuBroker {
            child: None,
            port,
            topics: Vec::new(),
            log,
        };
        broker.launch()?;
        Ok(broker)
    }

    /// `bootstrap.servers` for this broker (`127.0.0.1:PORT`).
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a topic with this many partitions (and re-creates it after a restart).
    pub fn create_topic(&mut self, name: &str, partitions: u32) -> Result<(), String> {
        self.run_topic_create(name, partitions)?;
        self.topics.push((name.to_owned(), partitions));
        Ok(())
    }

    /// Stops the broker (kills the process and waits for it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and re-creates its topics (empty: storage
    /// is in memory).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.launch()?;
        for (name, partitions) in self.topics.clone() {
            self.run_topic_create(&name, partitions)?;
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), String> {
        let bin = tansu_binary()?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let out = File::create(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "tansu exited ({status}) before listening on {addr}; log:\n{}",
                        self.log_tail()
                    ));
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "tansu did not listen on {addr} within 60 s; log:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn run_topic_create(&self, name: &str, partitions: u32) -> Result<(), String> {
        let bin = tansu_binary()?;
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        let partitions = partitions.to_string();
        // The broker may need a moment after it starts listening: try a few times.
        let mut last = String::new();
        for _ in 0..20 {
            let out = Command::new(&bin)
                .args([
                    "topic",
                    "create",
                    name,
                    "--partitions",
                    &partitions,
                    "--broker",
                    &broker,
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            if out.status.success() {
                return Ok(());
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("tansu topic create {name} failed: {last}"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedMessage {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value, if any.
    pub payload: Option<Vec<u8>>,
}

impl ConsumedMessage {
    /// The key as text (lossy).
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value as text (lossy).
    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Reads every message of `topics` from the beginning to the end, within `timeout`.
///
/// The end: each partition is read at least up to its high watermark when the call starts,
/// then until no message has come for a second. (tansu 0.6 reports a partition's high
/// watermark as the last batch's base offset + 1, so the rest of that batch is only found by
/// reading on; it arrives in the same fetch.)
pub fn read_all(
    bootstrap_servers: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<ConsumedMessage>, String> {
    const QUIET: Duration = Duration::from_secs(1);
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("group.id", "beacon-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| format!("cannot create consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(None, left())
        .map_err(|e| format!("metadata: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == *topic)
            .ok_or_else(|| format!("topic {topic} not found"))?;
        for p in t.partitions() {
            let (_low, high) = consumer
                .fetch_watermarks(topic, p.id(), left())
                .map_err(|e| format!("watermarks of {topic}/{}: {e}", p.id()))?;
            if high > 0 {
                ends.insert((topic.to_string(), p.id()), high);
            }
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("assign: {e}"))?;
    let mut last = Instant::now();
    while !ends.is_empty() || last.elapsed() < QUIET {
        if left().is_zero() {
            return Err(format!(
                "read {} message(s); partitions not read to their end within {} ms: {:?}",
                out.len(),
                timeout.as_millis(),
                ends
            ));
        }
        match consumer.poll(left().min(Duration::from_millis(100))) {
            None => {}
            Some(Err(e)) => return Err(format!("consume: {e}")),
            Some(Ok(m)) => {
                last = Instant::now();
                let id = (m.topic().to_owned(), m.partition());
                if let Some(end) = ends.get(&id) {
                    if m.offset() + 1 >= *end {
                        ends.remove(&id);
                    }
                }
                out.push(ConsumedMessage {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
            }
        }
    }
    Ok(out)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn tansu_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("BEACON_TANSU") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin/tansu"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "tansu not found (set BEACON_TANSU or install it: cargo install tansu --locked \
         --features dynostore)"
            .to_owned()
    })
}
