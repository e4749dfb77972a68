//! Resource detection: service, host and process facts, plus AWS Lambda and ECS attributes when
//! their environment is present. No network calls: everything comes from the environment handed
//! in and from facts about this process.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::config::{RawEnv, TelemetryConfig};

/// Facts about this process and host, gathered once ([`ProcessFacts::current`]) or made up in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    pub pid: u32,
    pub executable_name: Option<String>,
    pub executable_path: Option<String>,
    pub host_name: Option<String>,
}

impl ProcessFacts {
    /// Reads this process's pid and executable, and the host name (from `HOSTNAME` in `env`, else
    /// `/proc/sys/kernel/hostname` or `/etc/hostname`).
    pub fn current(env: &RawEnv) -> Self {
        let exe = std::env::current_exe().ok();
        let host_name = env.get("HOSTNAME").map(str::to_owned).or_else(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        });
        Self {
            pid: std::process::id(),
            executable_name: exe
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            executable_path: exe.map(|p| p.to_string_lossy().into_owned()),
            host_name,
        }
    }
}

/// Defaults for service attributes the environment does not set (a service's own name and
/// version, known at compile time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDefaults {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

/// Builds the resource. Precedence, lowest first: detected attributes (host, process, cloud),
/// the service defaults, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`. Without any service name
/// the spec's `unknown_service:<executable>` is used (on Lambda, the function name).
pub fn detect(
    config: &TelemetryConfig,
    defaults: &ServiceDefaults,
    facts: &ProcessFacts,
) -> Resource {
    let env = &config.env;
    let mut attrs: Vec<KeyValue> = Vec::new();
    let mut put = |key: &'static str, value: opentelemetry::Value| {
        attrs.retain(|kv| kv.key.as_str() != key);
        attrs.push(KeyValue::new(key, value));
    };

    put(semconv::PROCESS_PID, i64::from(facts.pid).into());
    if let Some(name) = &facts.executable_name {
        put(semconv::PROCESS_EXECUTABLE_NAME, name.clone().into());
    }
    if let Some(path) = &facts.executable_path {
        put(semconv::PROCESS_EXECUTABLE_PATH, path.clone().into());
    }
    put(semconv::PROCESS_RUNTIME_NAME, "rust".into());
    put(semconv::HOST_ARCH, std::env::consts::ARCH.into());
    put(semconv::OS_TYPE, std::env::consts::OS.into());
    if let Some(host) = &facts.host_name {
        put(semconv::HOST_NAME, host.clone().into());
    }

    let lambda_function = env.get("AWS_LAMBDA_FUNCTION_NAME");
    let ecs = env.get("ECS_CONTAINER_METADATA_URI_V4").is_some()
        || env.get("ECS_CONTAINER_METADATA_URI").is_some();
    if let Some(function) = lambda_function {
        put(semconv::CLOUD_PROVIDER, "aws".into());
        put(semconv::CLOUD_PLATFORM, "aws_lambda".into());
        put(semconv::FAAS_NAME, function.to_owned().into());
        if let Some(v) = env.get("AWS_LAMBDA_FUNCTION_VERSION") {
            put(semconv::FAAS_VERSION, v.to_owned().into());
        }
        if let Some(v) = env.get("AWS_LAMBDA_LOG_STREAM_NAME") {
            put(semconv::FAAS_INSTANCE, v.to_owned().into());
        }
        // The Lambda variable is in MiB; faas.max_memory is in bytes.
        if let Some(mib) = env
            .get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|v| v.parse::<i64>().ok())
        {
            put(semconv::FAAS_MAX_MEMORY, (mib * 1024 * 1024).into());
        }
        if let Some(v) = env.get("AWS_LAMBDA_LOG_GROUP_NAME") {
            put(
                semconv::AWS_LOG_GROUP_NAMES,
                opentelemetry::Value::Array(
                    vec![opentelemetry::StringValue::from(v.to_owned())].into(),
                ),
            );
        }
    } else if ecs {
        // Task metadata (ARNs, container id) needs an HTTP call; start-up makes none.
        put(semconv::CLOUD_PROVIDER, "aws".into());
        put(semconv::CLOUD_PLATFORM, "aws_ecs".into());
    }
    if (lambda_function.is_some() || ecs)
        && let Some(region) = env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
    {
        put(semconv::CLOUD_REGION, region.to_owned().into());
    }

    let fallback_name = lambda_function
        .map(str::to_owned)
        .or_else(|| defaults.name.clone())
        .unwrap_or_else(|| match &facts.executable_name {
            Some(exe) => format!("unknown_service:{exe}"),
            None => "unknown_service".to_owned(),
        });
    put(semconv::SERVICE_NAME, fallback_name.into());
    if let Some(ns) = &defaults.namespace {
        put(semconv::SERVICE_NAMESPACE, ns.clone().into());
    }
    if let Some(v) = &defaults.version {
        put(semconv::SERVICE_VERSION, v.clone().into());
    }

    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs);
    builder = builder.with_attributes(
        config
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    if let Some(name) = &config.service_name {
        builder = builder.with_service_name(name.clone());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::{Key, Value};

    fn facts() -> ProcessFacts {
        ProcessFacts {
            pid: 42,
            executable_name: Some("worker".into()),
            executable_path: Some("/opt/worker".into()),
            host_name: Some("box-1".into()),
        }
    }

    fn resource(vars: &[(&str, &str)], defaults: ServiceDefaults) -> Resource {
        let config = TelemetryConfig::from_env(vars.iter().copied()).unwrap();
        detect(&config, &defaults, &facts())
    }

    fn get(r: &Resource, key: &'static str) -> Option<Value> {
        r.get(&Key::from_static_str(key))
    }

    fn s(v: &str) -> Option<Value> {
        Some(Value::from(v.to_owned()))
    }

    #[test]
    fn host_process_and_default_service_name() {
        let r = resource(&[], ServiceDefaults::default());
        assert_eq!(get(&r, semconv::SERVICE_NAME), s("unknown_service:worker"));
        assert_eq!(get(&r, semconv::PROCESS_PID), Some(Value::I64(42)));
        assert_eq!(get(&r, semconv::PROCESS_EXECUTABLE_NAME), s("worker"));
        assert_eq!(get(&r, semconv::HOST_NAME), s("box-1"));
        assert_eq!(get(&r, semconv::PROCESS_RUNTIME_NAME), s("rust"));
        assert_eq!(get(&r, semconv::CLOUD_PROVIDER), None);
        assert_eq!(get(&r, semconv::FAAS_NAME), None);
    }

    #[test]
    fn service_name_precedence() {
        let defaults = ServiceDefaults {
            name: Some("default-name".into()),
            namespace: Some("shop".into()),
            version: Some("1.0.0".into()),
        };
        let r = resource(&[], defaults.clone());
        assert_eq!(get(&r, semconv::SERVICE_NAME), s("default-name"));
        assert_eq!(get(&r, semconv::SERVICE_NAMESPACE), s("shop"));
        let r = resource(
            &[(
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,service.version=2.0",
            )],
            defaults.clone(),
        );
        assert_eq!(get(&r, semconv::SERVICE_NAME), s("from-attrs"));
        assert_eq!(get(&r, semconv::SERVICE_VERSION), s("2.0"));
        let r = resource(
            &[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
                ("OTEL_SERVICE_NAME", "from-service-name"),
            ],
            defaults,
        );
        assert_eq!(get(&r, semconv::SERVICE_NAME), s("from-service-name"));
    }

    #[test]
    fn lambda_environment_gives_faas_and_cloud_attributes() {
        let r = resource(
            &[
                ("AWS_LAMBDA_FUNCTION_NAME", "onboarding-worker"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/24/[$LATEST]abc"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
                ("AWS_REGION", "eu-west-1"),
            ],
            ServiceDefaults::default(),
        );
        assert_eq!(get(&r, semconv::FAAS_NAME), s("onboarding-worker"));
        assert_eq!(get(&r, semconv::FAAS_VERSION), s("$LATEST"));
        assert_eq!(
            get(&r, semconv::FAAS_INSTANCE),
            s("2026/11/24/[$LATEST]abc")
        );
        assert_eq!(
            get(&r, semconv::FAAS_MAX_MEMORY),
            Some(Value::I64(128 * 1024 * 1024))
        );
        assert_eq!(get(&r, semconv::CLOUD_PROVIDER), s("aws"));
        assert_eq!(get(&r, semconv::CLOUD_PLATFORM), s("aws_lambda"));
        assert_eq!(get(&r, semconv::CLOUD_REGION), s("eu-west-1"));
        assert_eq!(get(&r, semconv::SERVICE_NAME), s("onboarding-worker"));
    }

    #[test]
    fn ecs_environment_gives_the_ecs_platform() {
        let r = resource(
            &[
                (
                    "ECS_CONTAINER_METADATA_URI_V4",
                    "http://169.254.170.2/v4/abc",
                ),
                ("AWS_REGION", "us-east-1"),
            ],
            ServiceDefaults::default(),
        );
        assert_eq!(get(&r, semconv::CLOUD_PLATFORM), s("aws_ecs"));
        assert_eq!(get(&r, semconv::CLOUD_PROVIDER), s("aws"));
        assert_eq!(get(&r, semconv::CLOUD_REGION), s("us-east-1"));
        assert_eq!(get(&r, semconv::FAAS_NAME), None);
    }

    #[test]
    fn region_alone_is_not_a_cloud() {
        let r = resource(&[("AWS_REGION", "us-east-1")], ServiceDefaults::default());
        assert_eq!(get(&r, semconv::CLOUD_REGION), None);
    }
}
