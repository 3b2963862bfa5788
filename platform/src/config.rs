//! Typed configuration, loaded once at start.
//!
//! Layers, later wins: the service's `Default` → a TOML file (`--config PATH` or `CHATSDK_CONFIG`) →
//! environment variables `CHATSDK_<SECTION>__<KEY>` (double underscore between levels), e.g.
//! `CHATSDK_KAFKA__BROKERS=10.0.0.1:9092` or `CHATSDK_HTTP__BIND=0.0.0.0:8080`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "CHATSDK_";
pub const CONFIG_FILE_ENV: &str = "CHATSDK_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Parse(#[from] Box<figment::Error>),
}

/// Loads `T` from its defaults, then the file (explicit path, else `CHATSDK_CONFIG`), then the environment.
/// An explicitly named file that does not exist is an error, not a silent fallback to defaults.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
    figment.extract().map_err(|error| ConfigError::Parse(Box::new(error)))
}

/// The `--config PATH` argument of a service binary, if given.
pub fn config_path_from_args() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|text| text.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// A secret value: never printed by `Debug` or `Display`.
///
/// It serializes to its value because the defaults layer of [`load`] goes through serde; nothing else
/// serializes configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// The HTTP listener of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Requests running longer are answered 503 and cancelled.
    pub request_timeout_ms: u64,
    /// On SIGTERM, in-flight requests get this long to finish before the process exits anyway.
    pub drain_timeout_ms: u64,
}

/// Services start from [`HttpConfig::on_port`] with their own port; this default only fills gaps.
impl Default for HttpConfig {
    fn default() -> Self {
        Self::on_port(8080)
    }
}

impl HttpConfig {
    pub fn on_port(port: u16) -> Self {
        Self { bind: SocketAddr::from(([127, 0, 0, 1], port)), request_timeout_ms: 10_000, drain_timeout_ms: 15_000 }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for machines.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,chatsdk_projector=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Json, filter: "info".to_owned() }
    }
}

/// Fails with [`ConfigError::Invalid`] unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if condition { Ok(()) } else { Err(ConfigError::Invalid(message())) }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures must return figment::Error, which is large
mod tests {
    use super::*;
    use figment::Jail;

    // Like a service config: unknown top-level keys are ignored (other CHATSDK_* variables may be set),
    // unknown keys inside a section are not.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        http: HttpConfig,
        log: LogConfig,
        password: Secret,
        retries: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                http: HttpConfig::on_port(18000),
                log: LogConfig::default(),
                password: Secret::new("default-password"),
                retries: 3,
            }
        }
    }

    fn jail_error(message: impl fmt::Display) -> figment::Error {
        figment::Error::from(message.to_string())
    }

    #[test]
    fn defaults_apply_when_nothing_is_configured() {
        Jail::expect_with(|_jail| {
            let loaded: Sample = load(None).map_err(jail_error)?;
            assert_eq!(loaded, Sample::default());
            Ok(())
        });
    }

    #[test]
    fn file_overrides_defaults_and_keeps_unset_fields_of_the_same_section() {
        Jail::expect_with(|jail| {
            jail.create_file("service.toml", "retries = 7\n[http]\nrequest_timeout_ms = 2500\n")?;
            let loaded: Sample = load(Some(Path::new("service.toml"))).map_err(jail_error)?;
            assert_eq!(loaded.retries, 7);
            assert_eq!(loaded.http.request_timeout_ms, 2500);
            // The service-specific default port survives a partial [http] section.
            assert_eq!(loaded.http.bind, SocketAddr::from(([127, 0, 0, 1], 18000)));
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_with_double_underscore_nesting() {
        Jail::expect_with(|jail| {
            jail.create_file("service.toml", "retries = 7\n[http]\nbind = \"127.0.0.1:9000\"\n")?;
            jail.set_env("CHATSDK_CONFIG", "service.toml");
            jail.set_env("CHATSDK_RETRIES", "9");
            jail.set_env("CHATSDK_HTTP__BIND", "0.0.0.0:7000");
            jail.set_env("CHATSDK_PASSWORD", "from-env");
            let loaded: Sample = load(None).map_err(jail_error)?;
            assert_eq!(loaded.retries, 9);
            assert_eq!(loaded.http.bind, SocketAddr::from(([0, 0, 0, 0], 7000)));
            assert_eq!(loaded.password.expose(), "from-env");
            Ok(())
        });
    }

    #[test]
    fn a_named_file_that_does_not_exist_is_an_error() {
        Jail::expect_with(|_jail| {
            let error = load::<Sample>(Some(Path::new("absent.toml"))).err();
            assert!(matches!(error, Some(ConfigError::MissingFile(_))), "{error:?}");
            Ok(())
        });
    }

    #[test]
    fn a_wrongly_typed_value_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("CHATSDK_HTTP__REQUEST_TIMEOUT_MS", "soon");
            let error = load::<Sample>(None).err().map(|error| error.to_string().to_lowercase()).unwrap_or_default();
            assert!(error.contains("request_timeout_ms"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_a_section_is_rejected() {
        Jail::expect_with(|jail| {
            jail.set_env("CHATSDK_HTTP__BINDD", "127.0.0.1:1");
            let error = load::<Sample>(None).err().map(|error| error.to_string().to_lowercase()).unwrap_or_default();
            assert!(error.contains("bindd"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }
}
