//! Logs: `tracing` events as JSON lines on stdout (or pretty lines for a terminal).

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber, logging to stdout, once; later calls (several services in one test
/// process) are no-ops. `RUST_LOG`, when set, overrides the configured filter.
pub fn init(config: &LogConfig) {
    init_with_writer(config, std::io::stdout);
}

/// [`init`] for command-line tools whose stdout is their output: logs go to stderr.
pub fn init_for_tool(config: &LogConfig) {
    init_with_writer(config, std::io::stderr);
}

fn init_with_writer<W>(config: &LogConfig, writer: W)
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(writer);
    // An already installed subscriber is the only possible error, and it is the one we want to keep.
    let _already_installed = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
