//! Settings of `agentstore serve`: a preset, then a TOML file, then `AGENTSTORE_*`
//! environment variables, then flags; each layer overrides the one before. Every value
//! is checked before the server starts, and a mistake (an unknown key, a bad address,
//! a negative rate) is an `invalid_input` error naming where it came from.
//!
//! ```toml
//! preset = "prod"            # dev | test | prod
//!
//! [server]
//! addr = "127.0.0.1:8080"
//! max_body_bytes = 16777216
//! rate_per_second = 100.0    # per API key; 0 = unlimited
//! rate_burst = 200
//! sweep_interval_secs = 3600 # retention sweep of every tenant; 0 = off
//! redis_url = "redis://127.0.0.1:6379/"  # shared rate limits and key-cache invalidation
//!                                        # between several servers; optional
//! mcp_allowed_hosts = ["localhost", "127.0.0.1", "::1", "agents.example.internal:8080"]
//!
//! [store]                    # --data-dir, --durability, --model-dir, --embed-events
//!                            # and their AGENTSTORE_* variables win over these
//! data_dir = "/var/lib/agentstore"   # relative paths are relative to this file
//! # database_url = "postgres://agentstore@db/agentstore"   # PostgreSQL instead
//! durability = "full"        # full | normal
//! model_dir = "/opt/models/all-MiniLM-L6-v2"
//! master_key_file = "master.key" # field encryption (--master-key-file)
//! embed_events = false
//! keyword_index = "auto"     # auto | eager | off
//! keyword_index_min_records = 50000  # auto: the store size at which it is built
//!
//! [log]
//! format = "json"            # json | text
//! level = "info"             # an env-filter directive, e.g. "info,agentstore=debug"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agentstore::{Error, Result};
use agentstore_sqlite::{Durability, KeywordIndexMode};
use serde::Deserialize;

/// Environment variables read, and the setting each overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("AGENTSTORE_ADDR", "server.addr"),
    ("AGENTSTORE_MAX_BODY_BYTES", "server.max_body_bytes"),
    ("AGENTSTORE_RATE_PER_SECOND", "server.rate_per_second"),
    ("AGENTSTORE_RATE_BURST", "server.rate_burst"),
    ("AGENTSTORE_MCP_ALLOWED_HOSTS", "server.mcp_allowed_hosts"),
    (
        "AGENTSTORE_SWEEP_INTERVAL_SECS",
        "server.sweep_interval_secs",
    ),
    ("AGENTSTORE_REDIS_URL", "server.redis_url"),
    ("AGENTSTORE_LOG_FORMAT", "log.format"),
    ("AGENTSTORE_LOG", "log.level"),
];

/// The variables of [`ENV_VARS`] that are set.
pub fn env_vars() -> BTreeMap<String, String> {
    ENV_VARS
        .iter()
        .filter_map(|(k, _)| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect()
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    Text,
}

/// Resolved settings of the server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeSettings {
    /// The preset the other values started from.
    pub preset: String,
    /// Listen address.
    pub addr: SocketAddr,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Requests per second per key (0: unlimited).
    pub rate_per_second: f64,
    /// Burst per key.
    pub rate_burst: u32,
    /// `Host` values `/mcp` answers; empty: any (written `["*"]`).
    pub mcp_allowed_hosts: Vec<String>,
    /// Seconds between retention sweeps (0: none).
    pub sweep_interval_secs: u64,
    /// Redis shared by several servers (rate limits, key-cache invalidation), if any.
    pub redis_url: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// The file's `[store]` section: each value applies unless its global flag (or that
    /// flag's environment variable) was given.
    pub store: StoreSettings,
}

/// How the server opens its store, from the config file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreSettings {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (instead of the data directory).
    pub database_url: Option<String>,
    /// Commit durability.
    pub durability: Option<Durability>,
    /// Local embedding model directory.
    pub model_dir: Option<PathBuf>,
    /// Embed events' content too.
    pub embed_events: Option<bool>,
    /// When the in-memory keyword index is built.
    pub keyword_index: Option<KeywordIndexMode>,
    /// File holding the master key of field encryption.
    pub master_key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileDurability {
    Full,
    Normal,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileKeywordIndex {
    Auto,
    Eager,
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    preset: Option<String>,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    log: FileLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    durability: Option<FileDurability>,
    model_dir: Option<PathBuf>,
    embed_events: Option<bool>,
    keyword_index: Option<FileKeywordIndex>,
    keyword_index_min_records: Option<u64>,
    master_key_file: Option<PathBuf>,
}

impl FileStore {
    /// The settings, with paths relative to the file's directory `base`.
    fn resolve(self, base: &Path) -> Result<StoreSettings> {
        let keyword_index = match (self.keyword_index, self.keyword_index_min_records) {
            (Some(FileKeywordIndex::Auto) | None, Some(min_records)) => {
                Some(KeywordIndexMode::Auto { min_records })
            }
            (Some(FileKeywordIndex::Auto), None) => Some(KeywordIndexMode::default()),
            (Some(FileKeywordIndex::Eager), None) => Some(KeywordIndexMode::Eager),
            (Some(FileKeywordIndex::Off), None) => Some(KeywordIndexMode::Off),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "config store.keyword_index_min_records",
                    "applies only to keyword_index = \"auto\"",
                ));
            }
        };
        Ok(StoreSettings {
            data_dir: self.data_dir.map(|p| base.join(p)),
            database_url: self.database_url,
            durability: self.durability.map(|d| match d {
                FileDurability::Full => Durability::Full,
                FileDurability::Normal => Durability::Normal,
            }),
            model_dir: self.model_dir.map(|p| base.join(p)),
            embed_events: self.embed_events,
            keyword_index,
            master_key_file: self.master_key_file.map(|p| base.join(p)),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    addr: Option<String>,
    max_body_bytes: Option<usize>,
    rate_per_second: Option<f64>,
    rate_burst: Option<u32>,
    mcp_allowed_hosts: Option<Vec<String>>,
    sweep_interval_secs: Option<u64>,
    redis_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

fn preset(name: &str) -> Result<ServeSettings> {
    let local: SocketAddr = ([127, 0, 0, 1], 8080).into();
    let base = ServeSettings {
        preset: name.to_owned(),
        addr: local,
        max_body_bytes: 16 << 20,
        rate_per_second: 0.0,
        rate_burst: 1,
        mcp_allowed_hosts: agentstore_server::DEFAULT_MCP_HOSTS
            .map(String::from)
            .to_vec(),
        sweep_interval_secs: 3600,
        redis_url: None,
        log_format: LogFormat::Text,
        log_level: "info".into(),
        store: StoreSettings::default(),
    };
    match name {
        // A laptop: no rate limit, readable logs with the engine's detail.
        "dev" => Ok(ServeSettings {
            log_level: "info,agentstore=debug".into(),
            ..base
        }),
        // Test runs: a free port, quiet logs, no rate limit to distort timings.
        "test" => Ok(ServeSettings {
            addr: ([127, 0, 0, 1], 0).into(),
            log_level: "warn".into(),
            ..base
        }),
        // Production: JSON logs and a per-key limit. Still loopback by default: exposing
        // the server is a decision to write down in the config file.
        "prod" => Ok(ServeSettings {
            log_format: LogFormat::Json,
            rate_per_second: 100.0,
            rate_burst: 200,
            ..base
        }),
        other => Err(Error::invalid(
            "preset",
            format!("unknown preset '{other}' (expected dev, test or prod)"),
        )),
    }
}

fn addr(s: &str, from: &str) -> Result<SocketAddr> {
    s.parse().map_err(|_| {
        Error::invalid(
            from,
            format!("'{s}' is not HOST:PORT (e.g. 127.0.0.1:8080)"),
        )
    })
}

/// A list of allowed hosts: `["*"]` is any host (empty list); otherwise every entry
/// is a host or host:port.
fn hosts(list: Vec<String>, from: &str) -> Result<Vec<String>> {
    let list: Vec<String> = list.into_iter().map(|h| h.trim().to_owned()).collect();
    if list == ["*"] {
        return Ok(Vec::new());
    }
    if list.is_empty() {
        return Err(Error::invalid(
            from,
            "must name at least one host (\"*\" allows any)",
        ));
    }
    for h in &list {
        if h.is_empty() || h == "*" || h.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(Error::invalid(
                from,
                format!("'{h}' is not a host or host:port (\"*\" alone allows any host)"),
            ));
        }
    }
    Ok(list)
}

fn number<T: std::str::FromStr>(s: &str, from: &str) -> Result<T> {
    s.trim()
        .parse()
        .map_err(|_| Error::invalid(from, format!("'{s}' is not a valid number")))
}

impl ServeSettings {
    /// Layers a preset, the file, the environment (`env`: variable → value) and the flags.
    pub fn resolve(
        file: Option<&Path>,
        preset_flag: Option<&str>,
        addr_flag: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut parsed: File = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                toml::from_str(&text).map_err(|e| {
                    Error::invalid("config", format!("{}: {}", path.display(), e.message()))
                })?
            }
            None => File::default(),
        };
        let base = file.and_then(Path::parent).unwrap_or(Path::new(""));
        let store = std::mem::take(&mut parsed.store).resolve(base)?;
        let name = preset_flag
            .map(str::to_owned)
            .or(parsed.preset.clone())
            .unwrap_or_else(|| "dev".into());
        let mut s = preset(&name)?;
        s.store = store;
        if let Some(a) = &parsed.server.addr {
            s.addr = addr(a, "config server.addr")?;
        }
        if let Some(v) = parsed.server.max_body_bytes {
            s.max_body_bytes = v;
        }
        if let Some(v) = parsed.server.rate_per_second {
            s.rate_per_second = v;
        }
        if let Some(v) = parsed.server.rate_burst {
            s.rate_burst = v;
        }
        if let Some(v) = parsed.server.sweep_interval_secs {
            s.sweep_interval_secs = v;
        }
        if let Some(v) = &parsed.server.redis_url {
            s.redis_url = Some(v.clone()).filter(|u| !u.trim().is_empty());
        }
        let mut hosts_set = false;
        if let Some(v) = parsed.server.mcp_allowed_hosts.clone() {
            s.mcp_allowed_hosts = hosts(v, "config server.mcp_allowed_hosts")?;
            hosts_set = true;
        }
        if let Some(v) = parsed.log.format {
            s.log_format = v;
        }
        if let Some(v) = &parsed.log.level {
            s.log_level = v.clone();
        }
        for (var, value) in env {
            match var.as_str() {
                "AGENTSTORE_ADDR" => s.addr = addr(value, var)?,
                "AGENTSTORE_MAX_BODY_BYTES" => s.max_body_bytes = number(value, var)?,
                "AGENTSTORE_RATE_PER_SECOND" => s.rate_per_second = number(value, var)?,
                "AGENTSTORE_RATE_BURST" => s.rate_burst = number(value, var)?,
                "AGENTSTORE_SWEEP_INTERVAL_SECS" => s.sweep_interval_secs = number(value, var)?,
                "AGENTSTORE_REDIS_URL" => {
                    s.redis_url = Some(value.clone()).filter(|u| !u.trim().is_empty())
                }
                "AGENTSTORE_MCP_ALLOWED_HOSTS" => {
                    s.mcp_allowed_hosts = hosts(value.split(',').map(String::from).collect(), var)?;
                    hosts_set = true;
                }
                "AGENTSTORE_LOG_FORMAT" => {
                    s.log_format = match value.as_str() {
                        "json" => LogFormat::Json,
                        "text" => LogFormat::Text,
                        _ => return Err(Error::invalid(var, "expected json or text")),
                    }
                }
                "AGENTSTORE_LOG" => s.log_level = value.clone(),
                _ => {}
            }
        }
        if let Some(a) = addr_flag {
            s.addr = addr(a, "addr")?;
        }
        // Listening on one address that is not loopback means clients reach it by that
        // address: answer it too, unless the list was written down.
        let ip = s.addr.ip();
        if !hosts_set && !ip.is_loopback() && !ip.is_unspecified() {
            s.mcp_allowed_hosts.push(ip.to_string());
        }
        if let Some(url) = &s.redis_url
            && let Err(e) = agentstore_server::shared::check_redis_url(url)
        {
            return Err(Error::invalid("redis_url", format!("'{url}': {e}")));
        }
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if !(1024..=1 << 30).contains(&self.max_body_bytes) {
            return Err(Error::invalid(
                "server.max_body_bytes",
                "must be between 1024 and 1073741824",
            ));
        }
        if !self.rate_per_second.is_finite() || self.rate_per_second < 0.0 {
            return Err(Error::invalid(
                "server.rate_per_second",
                "must be a number of 0 or more (0: unlimited)",
            ));
        }
        if self.rate_per_second > 0.0 && self.rate_burst == 0 {
            return Err(Error::invalid("server.rate_burst", "must be at least 1"));
        }
        if self.log_level.trim().is_empty() {
            return Err(Error::invalid("log.level", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn presets_differ_where_they_should() {
        let dev = ServeSettings::resolve(None, None, None, &env(&[])).unwrap();
        assert_eq!(dev.preset, "dev");
        assert_eq!(dev.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(dev.rate_per_second, 0.0);
        let prod = ServeSettings::resolve(None, Some("prod"), None, &env(&[])).unwrap();
        assert_eq!(prod.log_format, LogFormat::Json);
        assert_eq!(prod.rate_per_second, 100.0);
        let test = ServeSettings::resolve(None, Some("test"), None, &env(&[])).unwrap();
        assert_eq!(test.addr.port(), 0);
        let e = ServeSettings::resolve(None, Some("staging"), None, &env(&[])).unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(e.to_string().contains("staging"), "{e}");
    }

    #[test]
    fn file_then_env_then_flag() {
        let f = file(
            "preset = \"prod\"\n[server]\naddr = \"127.0.0.1:9000\"\nrate_burst = 5\n[log]\nlevel = \"debug\"\n",
        );
        let s = ServeSettings::resolve(Some(f.path()), None, None, &env(&[])).unwrap();
        assert_eq!(s.preset, "prod");
        assert_eq!(s.addr.port(), 9000);
        assert_eq!(s.rate_burst, 5);
        assert_eq!(s.log_level, "debug");
        let s = ServeSettings::resolve(
            Some(f.path()),
            None,
            None,
            &env(&[
                ("AGENTSTORE_ADDR", "127.0.0.1:9100"),
                ("AGENTSTORE_RATE_BURST", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.addr.port(), 9100);
        assert_eq!(s.rate_burst, 7);
        let s = ServeSettings::resolve(
            Some(f.path()),
            Some("dev"),
            Some("127.0.0.1:9200"),
            &env(&[("AGENTSTORE_ADDR", "127.0.0.1:9100")]),
        )
        .unwrap();
        assert_eq!(s.addr.port(), 9200);
        assert_eq!(s.preset, "dev");
    }

    #[test]
    fn store_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentstore.toml");
        std::fs::write(
            &path,
            "[store]\ndata_dir = \"data\"\ndurability = \"normal\"\nmodel_dir = \"/models/m\"\n\
             embed_events = true\nkeyword_index_min_records = 10\n",
        )
        .unwrap();
        let s = ServeSettings::resolve(Some(&path), None, None, &env(&[])).unwrap();
        assert_eq!(s.store.data_dir, Some(dir.path().join("data")));
        assert_eq!(s.store.durability, Some(Durability::Normal));
        assert_eq!(s.store.model_dir, Some(PathBuf::from("/models/m")));
        assert_eq!(s.store.embed_events, Some(true));
        assert_eq!(
            s.store.keyword_index,
            Some(KeywordIndexMode::Auto { min_records: 10 })
        );
        let f = file("[store]\nkeyword_index = \"off\"\n");
        let s = ServeSettings::resolve(Some(f.path()), None, None, &env(&[])).unwrap();
        assert_eq!(s.store.keyword_index, Some(KeywordIndexMode::Off));
        assert_eq!(s.store.data_dir, None);
    }

    #[test]
    fn mcp_allowed_hosts() {
        let dev = ServeSettings::resolve(None, None, None, &env(&[])).unwrap();
        assert_eq!(dev.mcp_allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
        let f = file("[server]\nmcp_allowed_hosts = [\"agents.internal:8080\"]\n");
        let s = ServeSettings::resolve(Some(f.path()), None, None, &env(&[])).unwrap();
        assert_eq!(s.mcp_allowed_hosts, ["agents.internal:8080"]);
        let s = ServeSettings::resolve(
            Some(f.path()),
            None,
            None,
            &env(&[(
                "AGENTSTORE_MCP_ALLOWED_HOSTS",
                "a.internal, b.internal:9000",
            )]),
        )
        .unwrap();
        assert_eq!(s.mcp_allowed_hosts, ["a.internal", "b.internal:9000"]);
        let any = ServeSettings::resolve(
            None,
            None,
            None,
            &env(&[("AGENTSTORE_MCP_ALLOWED_HOSTS", "*")]),
        )
        .unwrap();
        assert!(any.mcp_allowed_hosts.is_empty());
        // A server on one non-loopback address also answers that address.
        let lan = ServeSettings::resolve(None, None, Some("10.1.2.3:8080"), &env(&[])).unwrap();
        assert_eq!(
            lan.mcp_allowed_hosts,
            ["localhost", "127.0.0.1", "::1", "10.1.2.3"]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("[server]\nport = 8080\n", "port"),
            ("[server]\naddr = \"localhost\"\n", "server.addr"),
            ("[server]\nrate_per_second = -1.0\n", "rate_per_second"),
            ("[server]\nmax_body_bytes = 10\n", "max_body_bytes"),
            ("[log]\nformat = \"xml\"\n", "xml"),
            ("preset = \"qa\"\n", "qa"),
            ("not toml at all", "config"),
            ("[server]\nmcp_allowed_hosts = []\n", "mcp_allowed_hosts"),
            ("[store]\ndurability = \"sometimes\"\n", "sometimes"),
            ("[store]\npath = \"x\"\n", "path"),
            (
                "[store]\nkeyword_index = \"off\"\nkeyword_index_min_records = 5\n",
                "keyword_index_min_records",
            ),
            (
                "[server]\nmcp_allowed_hosts = [\"a\", \"*\"]\n",
                "mcp_allowed_hosts",
            ),
            (
                "[server]\nmcp_allowed_hosts = [\"http://a/\"]\n",
                "http://a/",
            ),
        ];
        for (text, needle) in cases {
            let f = file(text);
            let e = ServeSettings::resolve(Some(f.path()), None, None, &env(&[])).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
        let e = ServeSettings::resolve(None, None, None, &env(&[("AGENTSTORE_RATE_BURST", "x")]))
            .unwrap_err();
        assert!(e.to_string().contains("AGENTSTORE_RATE_BURST"), "{e}");
        let missing = ServeSettings::resolve(
            Some(Path::new("/nonexistent/agentstore.toml")),
            None,
            None,
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(missing.code(), "io_error");
    }
}
