//! The host's configuration: the raw values as given on the command line, and the validated form
//! the event source mapping and the environments run from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most records one SQS event source mapping hands to one invocation.
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// The largest batch SQS returns from one `ReceiveMessage` call, and so the largest batch a mapping
/// may gather without a batching window.
pub const MAX_BATCH_SIZE_WITHOUT_WINDOW: u32 = 10;
/// Lambda's limits on a function's timeout and memory.
pub const MAX_TIMEOUT_SECS: u64 = 900;
pub const MIN_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Lambda's longest batching window (300 s).
pub const MAX_BATCH_WINDOW_MS: u64 = 300_000;

/// The values as given (flags), before defaults and checks.
#[derive(Debug, Clone, Default)]
pub struct RawHostConfig {
    pub queue: String,
    pub batch_size: Option<u32>,
    pub batch_window_ms: Option<u64>,
    pub concurrency: Option<u32>,
    pub timeout_secs: Option<u64>,
    pub function_name: Option<String>,
    pub memory_mb: Option<u32>,
    pub handler: Option<String>,
    /// External extensions, started before the runtime (`/opt/extensions/*` on AWS).
    pub extensions: Vec<PathBuf>,
    pub command: Vec<OsString>,
}

/// A configuration value that stops the host from starting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--queue: a queue name is required")]
    MissingQueue,
    #[error("--batch-size: {0} is not between 1 and {MAX_BATCH_SIZE}")]
    BatchSize(u32),
    #[error(
        "--batch-size: {0} is more than {MAX_BATCH_SIZE_WITHOUT_WINDOW}, which needs a --batch-window-ms above 0 (as Lambda requires a batching window)"
    )]
    BatchSizeNeedsWindow(u32),
    #[error("--batch-window-ms: {0} is more than {MAX_BATCH_WINDOW_MS}")]
    BatchWindow(u64),
    #[error("--concurrency: {0} is not between 1 and 1000")]
    Concurrency(u32),
    #[error("--timeout-secs: {0} is not between 1 and {MAX_TIMEOUT_SECS}")]
    Timeout(u64),
    #[error("--memory-mb: {0} is not between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}")]
    Memory(u32),
    #[error("--function-name: {0:?} is not 1 to 64 letters, digits, '-' or '_'")]
    FunctionName(String),
    #[error("COMMAND: give the function's command after `--`")]
    MissingCommand,
    #[error("--extension: {0:?} is not an executable file")]
    Extension(PathBuf),
    #[error("--extension: {0} extensions given; a function has at most {max}", max = crate::runtime_api::MAX_EXTENSIONS)]
    TooManyExtensions(usize),
}

/// The validated configuration of one host: one event source mapping feeding one function.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub queue: String,
    pub batch_size: u32,
    pub batch_window: Duration,
    pub concurrency: u32,
    pub timeout: Duration,
    pub function_name: String,
    pub memory_mb: u32,
    pub handler: String,
    pub command: Vec<OsString>,
    /// External extensions, started in this order before the runtime.
    pub extensions: Vec<PathBuf>,
    /// Variables set, in each environment, to a `127.0.0.1:PORT` of its own (see
    /// [`EnvironmentSpec::sandbox_ports`](crate::EnvironmentSpec::sandbox_ports)).
    pub sandbox_ports: Vec<String>,
    /// The function's own environment variables, set on top of the host's environment and the
    /// standard Lambda variables.
    pub environment: BTreeMap<String, String>,
    /// How long a stopping environment gets between SIGTERM and SIGKILL.
    pub shutdown_grace: Duration,
    /// How long a new environment may take to call `/next` for the first time (Lambda's 10 s).
    pub init_timeout: Duration,
}

impl RawHostConfig {
    /// Applies Lambda's defaults (batch of 10, no window, timeout 3 s, 128 MB) and checks each value
    /// against Lambda's limits.
    pub fn validate(self) -> Result<HostConfig, ConfigError> {
        if self.queue.trim().is_empty() {
            return Err(ConfigError::MissingQueue);
        }
        let batch_size = self.batch_size.unwrap_or(10);
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(ConfigError::BatchSize(batch_size));
        }
        let batch_window_ms = self.batch_window_ms.unwrap_or(0);
        if batch_window_ms > MAX_BATCH_WINDOW_MS {
            return Err(ConfigError::BatchWindow(batch_window_ms));
        }
        if batch_size > MAX_BATCH_SIZE_WITHOUT_WINDOW && batch_window_ms == 0 {
            return Err(ConfigError::BatchSizeNeedsWindow(batch_size));
        }
        let concurrency = self.concurrency.unwrap_or(1);
        if concurrency == 0 || concurrency > 1000 {
            return Err(ConfigError::Concurrency(concurrency));
        }
        let timeout_secs = self.timeout_secs.unwrap_or(3);
        if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
            return Err(ConfigError::Timeout(timeout_secs));
        }
        let memory_mb = self.memory_mb.unwrap_or(MIN_MEMORY_MB);
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&memory_mb) {
            return Err(ConfigError::Memory(memory_mb));
        }
        let function_name = match self.function_name {
            Some(name) => name,
            None => format!("{}-function", self.queue),
        };
        let valid_name = !function_name.is_empty()
            && function_name.len() <= 64
            && function_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(ConfigError::FunctionName(function_name));
        }
        if self.command.is_empty() {
            return Err(ConfigError::MissingCommand);
        }
        if self.extensions.len() > crate::runtime_api::MAX_EXTENSIONS {
            return Err(ConfigError::TooManyExtensions(self.extensions.len()));
        }
        for extension in &self.extensions {
            // A path as given, never looked up in PATH (as /opt/extensions/* are files).
            let as_path = if extension.as_os_str().as_encoded_bytes().contains(&b'/') {
                extension.clone()
            } else {
                Path::new(".").join(extension)
            };
            if resolve_program(&as_path, None).is_none() {
                return Err(ConfigError::Extension(extension.clone()));
            }
        }
        Ok(HostConfig {
            queue: self.queue,
            batch_size,
            batch_window: Duration::from_millis(batch_window_ms),
            concurrency,
            timeout: Duration::from_secs(timeout_secs),
            function_name,
            memory_mb,
            handler: self.handler.unwrap_or_else(|| "bootstrap".to_owned()),
            command: self.command,
            extensions: self.extensions,
            sandbox_ports: Vec::new(),
            environment: BTreeMap::new(),
            shutdown_grace: Duration::from_secs(2),
            init_timeout: Duration::from_secs(10),
        })
    }
}

/// Finds the program the way `execvp` would: a name with a `/` is a path, any other name is
/// looked up in `path_var` (the `PATH` value). `None` when nothing executable is there.
pub fn resolve_program(program: &Path, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawHostConfig {
        RawHostConfig {
            queue: "orders".into(),
            command: vec!["./bootstrap".into()],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_lambdas() {
        let config = raw().validate().unwrap();
        assert_eq!(config.batch_size, 10);
        assert_eq!(config.batch_window, Duration::ZERO);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.memory_mb, 128);
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.function_name, "orders-function");
    }

    #[test]
    fn each_bad_value_is_named() {
        let cases: Vec<(RawHostConfig, ConfigError)> = vec![
            (
                RawHostConfig {
                    queue: " ".into(),
                    ..raw()
                },
                ConfigError::MissingQueue,
            ),
            (
                RawHostConfig {
                    batch_size: Some(0),
                    ..raw()
                },
                ConfigError::BatchSize(0),
            ),
            (
                RawHostConfig {
                    batch_size: Some(11),
                    ..raw()
                },
                ConfigError::BatchSizeNeedsWindow(11),
            ),
            (
                RawHostConfig {
                    batch_window_ms: Some(300_001),
                    ..raw()
                },
                ConfigError::BatchWindow(300_001),
            ),
            (
                RawHostConfig {
                    concurrency: Some(0),
                    ..raw()
                },
                ConfigError::Concurrency(0),
            ),
            (
                RawHostConfig {
                    timeout_secs: Some(901),
                    ..raw()
                },
                ConfigError::Timeout(901),
            ),
            (
                RawHostConfig {
                    memory_mb: Some(64),
                    ..raw()
                },
                ConfigError::Memory(64),
            ),
            (
                RawHostConfig {
                    function_name: Some("a b".into()),
                    ..raw()
                },
                ConfigError::FunctionName("a b".into()),
            ),
            (
                RawHostConfig {
                    command: vec![],
                    ..raw()
                },
                ConfigError::MissingCommand,
            ),
            (
                RawHostConfig {
                    extensions: vec!["/nonexistent/extension".into()],
                    ..raw()
                },
                ConfigError::Extension("/nonexistent/extension".into()),
            ),
            (
                RawHostConfig {
                    extensions: vec!["/bin/sh".into(); 11],
                    ..raw()
                },
                ConfigError::TooManyExtensions(11),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(raw.validate().unwrap_err(), want);
        }
    }

    #[test]
    fn a_large_batch_with_a_window_is_accepted() {
        let config = RawHostConfig {
            batch_size: Some(100),
            batch_window_ms: Some(500),
            ..raw()
        }
        .validate()
        .unwrap();
        assert_eq!(config.batch_size, 100);
    }
}
