//! Where a service keeps the objects it writes (feature `objects`): a local directory, or S3
//! (`s3://bucket/prefix`, feature `s3`) configured from the `AWS_*` pairs of the service's
//! environment map only, never the process environment, as the AWS SDKs and `object_store`
//! read them. Every service that writes objects opens its store here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;

/// A setting that cannot be used: `NAME: "value" problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value:?} {problem}")]
pub struct SettingError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix`; needs the `s3` feature to be opened.
    S3 {
        bucket: String,
        prefix: String,
        /// The `AWS_*` variables of the environment map: credentials, region, endpoint.
        settings: S3Settings,
    },
}

impl ObjectStoreLocation {
    /// The value of the setting `name`: `s3://bucket/prefix` (the `AWS_*` pairs of `env` kept
    /// for its client), `file://DIR` or a directory.
    pub fn parse(
        name: &'static str,
        value: &str,
        env: &HashMap<String, String>,
    ) -> Result<Self, SettingError> {
        let value = value.trim();
        match value.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(SettingError {
                        name,
                        value: value.to_owned(),
                        problem: "names no bucket".to_owned(),
                    });
                }
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                    settings: S3Settings::from_env(env)?,
                })
            }
            None => Ok(Self::Local(PathBuf::from(
                value.strip_prefix("file://").unwrap_or(value),
            ))),
        }
    }

    /// The S3 settings (to mask their secrets in messages); `None` for a directory.
    pub fn s3_settings(&self) -> Option<&S3Settings> {
        match self {
            Self::S3 { settings, .. } => Some(settings),
            Self::Local(_) => None,
        }
    }
}

impl std::fmt::Display for ObjectStoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The `AWS_*` pairs of a service's environment map, kept for the S3 client of its object
/// store: credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, the
/// `AWS_CONTAINER_*` variables), `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/
/// `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_MAX_ATTEMPTS` and the rest that
/// `object_store` knows (the store skips the others, such as `AWS_LAMBDA_*`).
///
/// Values hold secrets: `Debug` shows the keys only, and [`Self::redact`] masks secret values in
/// any text before it is shown.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings(BTreeMap<String, String>);

/// `AWS_MAX_ATTEMPTS`, the AWS SDKs' name for attempts per request.
const MAX_ATTEMPTS: &str = "AWS_MAX_ATTEMPTS";

impl S3Settings {
    /// The non-empty `AWS_*` pairs of `env`, values trimmed. `AWS_MAX_ATTEMPTS`, when given,
    /// must be a number of at least 1 (attempts per request, the first included, as in the AWS
    /// SDKs).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingError> {
        let vars: BTreeMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.clone(), v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if let Some(v) = vars.get(MAX_ATTEMPTS)
            && v.parse::<u32>().ok().filter(|n| *n > 0).is_none()
        {
            return Err(SettingError {
                name: MAX_ATTEMPTS,
                value: v.clone(),
                problem: "is not a number of at least 1".to_owned(),
            });
        }
        Ok(Self(vars))
    }

    /// The kept pairs, in the order of their names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of one variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `AWS_MAX_ATTEMPTS`: attempts per request, the first included (checked by
    /// [`Self::from_env`]).
    pub fn max_attempts(&self) -> Option<u32> {
        self.get(MAX_ATTEMPTS)?.parse().ok().filter(|n| *n > 0)
    }

    /// `text` with the value of every secret variable (a key, token, secret or password; not a
    /// `…_FILE` path) replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.0 {
            if is_secret(name) {
                out = out.replace(value.as_str(), "***");
            }
        }
        out
    }
}

/// Whether an `AWS_*` variable holds a credential (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SSE_CUSTOMER_KEY_BASE64`, …) rather than a path to one.
fn is_secret(name: &str) -> bool {
    !name.ends_with("_FILE")
        && ["SECRET", "TOKEN", "KEY", "PASSWORD"]
            .iter()
            .any(|word| name.contains(word))
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys only: the values hold credentials.
        f.debug_tuple("S3Settings")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why an object store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("directory {path}", path = path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store")]
    Local(#[from] object_store::Error),
    /// The S3 client could not be built from the `AWS_*` settings; `message` has every secret
    /// value masked.
    #[error("s3://{bucket}: cannot build the S3 client: {message}")]
    S3 { bucket: String, message: String },
    #[error("S3 is named, but this build lacks the `s3` feature")]
    S3NotBuilt,
}

/// Opens the store at `location`: the directory is created; S3's client is built from its
/// settings. Names are lower-cased as `AmazonS3Builder::from_env` does, so `AWS_ENDPOINT_URL`/
/// `AWS_ENDPOINT` set the endpoint, `AWS_ENDPOINT_URL_S3` one that wins over it, `AWS_REGION`
/// the region (`AWS_DEFAULT_REGION` when it is absent); names `object_store` does not know
/// (`AWS_LAMBDA_*`, `AWS_PROFILE`, …) are skipped. `AWS_MAX_ATTEMPTS` bounds the attempts per
/// request (`object_store` otherwise retries for up to three minutes).
pub fn open_object_store(
    location: &ObjectStoreLocation,
) -> Result<Arc<dyn ObjectStore>, ObjectStoreError> {
    match location {
        ObjectStoreLocation::Local(dir) => Ok(Arc::new(local_store(dir)?)),
        ObjectStoreLocation::S3 {
            bucket,
            prefix,
            settings,
        } => s3_store(bucket, prefix, settings),
    }
}

fn local_store(dir: &Path) -> Result<object_store::local::LocalFileSystem, ObjectStoreError> {
    std::fs::create_dir_all(dir).map_err(|source| ObjectStoreError::Directory {
        path: dir.to_owned(),
        source,
    })?;
    Ok(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
}

#[cfg(feature = "s3")]
fn s3_store(
    bucket: &str,
    prefix: &str,
    settings: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, ObjectStoreError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

    let mut builder = AmazonS3Builder::new();
    for (name, value) in settings.iter() {
        if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    if let Some(attempts) = settings.max_attempts() {
        builder = builder.with_retry(object_store::RetryConfig {
            max_retries: attempts.saturating_sub(1) as usize,
            ..Default::default()
        });
    }
    let s3 = builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| ObjectStoreError::S3 {
            bucket: bucket.to_owned(),
            message: settings.redact(&e.to_string()),
        })?;
    if prefix.is_empty() {
        Ok(Arc::new(s3))
    } else {
        Ok(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)))
    }
}

#[cfg(not(feature = "s3"))]
fn s3_store(
    _bucket: &str,
    _prefix: &str,
    _settings: &S3Settings,
) -> Result<Arc<dyn ObjectStore>, ObjectStoreError> {
    Err(ObjectStoreError::S3NotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn locations_parse_and_name_their_setting() {
        let e = env(&[("AWS_REGION", "eu-west-1"), ("HOME", "/root")]);
        let s3 = ObjectStoreLocation::parse("FILES_URL", "s3://b/some/prefix/", &e).unwrap();
        assert_eq!(s3.to_string(), "s3://b/some/prefix");
        assert_eq!(
            s3.s3_settings().unwrap().get("AWS_REGION"),
            Some("eu-west-1")
        );
        assert_eq!(s3.s3_settings().unwrap().get("HOME"), None);
        assert_eq!(
            ObjectStoreLocation::parse("FILES_URL", "file:///tmp/x", &e).unwrap(),
            ObjectStoreLocation::Local(PathBuf::from("/tmp/x"))
        );
        let err = ObjectStoreLocation::parse("FILES_URL", "s3:///p", &e).unwrap_err();
        assert_eq!(err.to_string(), "FILES_URL: \"s3:///p\" names no bucket");
        let err =
            ObjectStoreLocation::parse("FILES_URL", "s3://b", &env(&[("AWS_MAX_ATTEMPTS", "0")]))
                .unwrap_err();
        assert_eq!(err.name, "AWS_MAX_ATTEMPTS");
    }

    #[test]
    fn settings_never_show_a_secret_value() {
        let s = S3Settings::from_env(&env(&[
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/token"),
        ]))
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert_eq!(
            s.redact("key s3cr3t at /var/token"),
            "key *** at /var/token"
        );
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_store_is_built_from_the_settings_skipping_unknown_names() {
        let store = s3_store(
            "docs",
            "",
            &S3Settings::from_env(&env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_LAMBDA_FUNCTION_NAME", "onboarding-lambda"),
                ("AWS_PROFILE", "default"),
                ("AWS_MAX_ATTEMPTS", "2"),
            ]))
            .unwrap(),
        )
        .unwrap();
        // Names object_store does not know (and AWS_MAX_ATTEMPTS, taken apart) are no error.
        assert_eq!(store.to_string(), "AmazonS3(docs)");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_build_errors_hide_secrets() {
        let Err(e) = s3_store(
            "docs",
            "",
            &S3Settings::from_env(&env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDNEVERSHOWN"),
                ("AWS_SESSION_TOKEN", "token-never-shown"),
            ]))
            .unwrap(),
        ) else {
            panic!("an access key without its secret was accepted");
        };
        let message = e.to_string();
        assert!(
            message.starts_with("s3://docs: cannot build the S3 client"),
            "{message}"
        );
        assert!(
            !message.contains("NEVERSHOWN") && !message.contains("never-shown"),
            "{message}"
        );
    }
}
