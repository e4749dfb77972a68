//! Table tests for the `OTEL_*` configuration: defaults, precedence, and every rejected value.

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
    TelemetryConfig::from_env(vars.iter().copied())
}

fn otlp_traces(vars: &[(&str, &str)]) -> OtlpConfig {
    match config(vars).unwrap().traces_exporters.as_slice() {
        [ExporterKind::Otlp(o)] => o.clone(),
        other => panic!("expected otlp, got {other:?}"),
    }
}

#[test]
fn the_empty_environment_gives_the_spec_defaults() {
    let c = config(&[]).unwrap();
    assert!(!c.sdk_disabled);
    assert_eq!(c.service_name, None);
    assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
    assert_eq!(
        c.propagators,
        vec![PropagatorName::TraceContext, PropagatorName::Baggage]
    );
    assert_eq!(c.logs_exporter, ExporterKind::None);
    assert_eq!(
        c.batch,
        BatchConfig {
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    );
    assert_eq!(
        c.traces_exporters,
        vec![ExporterKind::Otlp(OtlpConfig {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: "http://localhost:4318/v1/traces".into(),
            headers: vec![],
            timeout: Duration::from_secs(10),
            compression: OtlpCompression::None,
            retry: RetryConfig {
                max_retries: 10,
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
        })]
    );
}

#[test]
fn retry_settings_are_read_and_cap_the_first_delay() {
    let o = otlp_traces(&[
        ("THROUGHLINE_OTLP_RETRIES", "0"),
        ("THROUGHLINE_OTLP_RETRY_MAX_DELAY", "50"),
    ]);
    assert_eq!(
        o.retry,
        RetryConfig {
            max_retries: 0,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(50),
        }
    );
}

#[test]
fn endpoints_follow_the_spec() {
    let table: &[(&[(&str, &str)], &str)] = &[
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")],
            "http://collector:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
            "http://collector:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example/base")],
            "https://c.example/base/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom")],
            "http://c:4318/custom",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://specific:4318"),
            ],
            "http://specific:4318",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "http://localhost:4317",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ],
            "http://c:4317",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")],
            "http://localhost:4318/v1/traces",
        ),
    ];
    for (vars, want) in table {
        assert_eq!(otlp_traces(vars).endpoint, *want, "vars {vars:?}");
    }
}

#[test]
fn signal_specific_variables_win() {
    let o = otlp_traces(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=generic"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=specific"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
    ]);
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.headers, vec![("b".to_owned(), "specific".to_owned())]);
    assert_eq!(o.timeout, Duration::from_millis(250));
    assert_eq!(o.compression, OtlpCompression::Gzip);
}

#[test]
fn the_seeds_bearer_header_works_from_the_environment_alone() {
    let o = otlp_traces(&[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc")]);
    assert_eq!(
        o.headers,
        vec![("authorization".to_owned(), "Bearer abc".to_owned())]
    );
}

#[test]
fn samplers_cover_every_spec_value() {
    let table: &[(&[(&str, &str)], SamplerConfig)] = &[
        (
            &[("OTEL_TRACES_SAMPLER", "always_on")],
            SamplerConfig::AlwaysOn,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "always_off")],
            SamplerConfig::AlwaysOff,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "traceidratio")],
            SamplerConfig::TraceIdRatio(1.0),
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
            SamplerConfig::TraceIdRatio(0.25),
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
            SamplerConfig::ParentBasedAlwaysOn,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
            SamplerConfig::ParentBasedAlwaysOff,
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
            SamplerConfig::ParentBasedTraceIdRatio(0.0),
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1"),
            ],
            SamplerConfig::ParentBasedTraceIdRatio(1.0),
        ),
    ];
    for (vars, want) in table {
        assert_eq!(config(vars).unwrap().sampler, *want, "vars {vars:?}");
    }
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let table: &[(&[(&str, &str)], &str)] = &[
        (
            &[("OTEL_TRACES_SAMPLER_ARG", "abc")],
            r#"OTEL_TRACES_SAMPLER_ARG: "abc" is not a number between 0 and 1"#,
        ),
        (
            &[("OTEL_TRACES_SAMPLER_ARG", "1.5")],
            r#"OTEL_TRACES_SAMPLER_ARG: "1.5" is not a number between 0 and 1"#,
        ),
        (
            &[("OTEL_TRACES_SAMPLER_ARG", "-0.1")],
            r#"OTEL_TRACES_SAMPLER_ARG: "-0.1" is not a number between 0 and 1"#,
        ),
        (
            &[("OTEL_TRACES_SAMPLER_ARG", "NaN")],
            r#"OTEL_TRACES_SAMPLER_ARG: "NaN" is not a number between 0 and 1"#,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "sometimes")],
            r#"OTEL_TRACES_SAMPLER: "sometimes" is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"#,
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")],
            r#"OTEL_TRACES_SAMPLER: "jaeger_remote" is not supported by throughline: remote samplers need network calls at start-up"#,
        ),
        (
            &[("OTEL_SDK_DISABLED", "yes")],
            r#"OTEL_SDK_DISABLED: "yes" is not true or false"#,
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "zipkin")],
            r#"OTEL_TRACES_EXPORTER: "zipkin" is not supported by throughline: use otlp, console or none"#,
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "stdout")],
            r#"OTEL_TRACES_EXPORTER: "stdout" is not one of otlp, console, none"#,
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "otlp,none")],
            r#"OTEL_TRACES_EXPORTER: "otlp,none" cannot be combined with other values"#,
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "console,otlp,console")],
            r#"OTEL_TRACES_EXPORTER: "console,otlp,console" names the same exporter twice"#,
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "otlp,zipkin")],
            r#"OTEL_TRACES_EXPORTER: "otlp,zipkin" is not supported by throughline: use otlp, console or none"#,
        ),
        (
            &[("OTEL_LOGS_EXPORTER", "otlp,console")],
            r#"OTEL_LOGS_EXPORTER: "otlp,console" is not supported by throughline: one exporter per signal"#,
        ),
        (
            &[("OTEL_LOGS_EXPORTER", "file")],
            r#"OTEL_LOGS_EXPORTER: "file" is not one of otlp, console, none"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")],
            r#"OTEL_EXPORTER_OTLP_PROTOCOL: "udp" is not one of grpc, http/protobuf, http/json"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")],
            r#"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" is not supported by throughline: use grpc or http/protobuf"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")],
            r#"OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4317" is not an http:// or https:// URL"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://")],
            r#"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://" is not an http:// or https:// URL"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
            r#"OTEL_EXPORTER_OTLP_TIMEOUT: "10s" is not a whole number of milliseconds"#,
        ),
        (
            &[("THROUGHLINE_OTLP_RETRIES", "-1")],
            r#"THROUGHLINE_OTLP_RETRIES: "-1" is not a whole number"#,
        ),
        (
            &[("THROUGHLINE_OTLP_RETRY_MAX_DELAY", "2s")],
            r#"THROUGHLINE_OTLP_RETRY_MAX_DELAY: "2s" is not a whole number of milliseconds"#,
        ),
        (
            &[("THROUGHLINE_OTLP_RETRY_MAX_DELAY", "0")],
            r#"THROUGHLINE_OTLP_RETRY_MAX_DELAY: "0" is not a whole number greater than 0"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
            r#"OTEL_EXPORTER_OTLP_COMPRESSION: "zstd" is not one of gzip, none"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_HEADERS", "authorization")],
            r#"OTEL_EXPORTER_OTLP_HEADERS: "authorization" is not a valid key=value list: member "authorization" has no '='"#,
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=%G1")],
            r#"OTEL_EXPORTER_OTLP_TRACES_HEADERS: "a=%G1" is not a valid key=value list: member "a=%G1" has a '%' not followed by two hex digits"#,
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "a=1,b")],
            r#"OTEL_RESOURCE_ATTRIBUTES: "a=1,b" is not a valid key=value list: member "b" has no '='"#,
        ),
        (
            &[("OTEL_BSP_SCHEDULE_DELAY", "-1")],
            r#"OTEL_BSP_SCHEDULE_DELAY: "-1" is not a whole number of milliseconds"#,
        ),
        (
            &[("OTEL_BSP_EXPORT_TIMEOUT", "1.5")],
            r#"OTEL_BSP_EXPORT_TIMEOUT: "1.5" is not a whole number of milliseconds"#,
        ),
        (
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            r#"OTEL_BSP_MAX_QUEUE_SIZE: "0" is not a whole number greater than 0"#,
        ),
        (
            &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "many")],
            r#"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "many" is not a whole number greater than 0"#,
        ),
        (
            &[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
            ],
            r#"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "200" is larger than OTEL_BSP_MAX_QUEUE_SIZE (100)"#,
        ),
        (
            &[("OTEL_PROPAGATORS", "tracecontext,none")],
            r#"OTEL_PROPAGATORS: "tracecontext,none" cannot be combined with other values"#,
        ),
        (
            &[("OTEL_PROPAGATORS", "b3")],
            r#"OTEL_PROPAGATORS: "b3" is not one of tracecontext, baggage, xray, none"#,
        ),
        (
            &[("OTEL_PROPAGATORS", "tracecontext,w3c")],
            r#"OTEL_PROPAGATORS: "tracecontext,w3c" is not one of tracecontext, baggage, xray, none"#,
        ),
    ];
    for (vars, want) in table {
        let got = config(vars).expect_err(&format!("{vars:?} should be rejected"));
        assert_eq!(got.to_string(), *want, "vars {vars:?}");
    }
}

#[test]
fn accepted_values_of_the_simple_variables() {
    assert!(
        config(&[("OTEL_SDK_DISABLED", "TRUE")])
            .unwrap()
            .sdk_disabled
    );
    assert!(
        !config(&[("OTEL_SDK_DISABLED", "false")])
            .unwrap()
            .sdk_disabled
    );
    assert_eq!(
        config(&[("OTEL_TRACES_EXPORTER", "console")])
            .unwrap()
            .traces_exporters,
        vec![ExporterKind::Console]
    );
    assert_eq!(
        config(&[("OTEL_TRACES_EXPORTER", "none")])
            .unwrap()
            .traces_exporters,
        Vec::new()
    );
    // Several at once, as the specification allows: each span goes to all of them.
    let both = config(&[("OTEL_TRACES_EXPORTER", "otlp, console")])
        .unwrap()
        .traces_exporters;
    assert!(matches!(
        both.as_slice(),
        [ExporterKind::Otlp(_), ExporterKind::Console]
    ));
    assert_eq!(
        config(&[("OTEL_SERVICE_NAME", "onboarding-api")])
            .unwrap()
            .service_name
            .as_deref(),
        Some("onboarding-api")
    );
    assert_eq!(
        config(&[("OTEL_PROPAGATORS", "xray, tracecontext,xray")])
            .unwrap()
            .propagators,
        vec![PropagatorName::XRay, PropagatorName::TraceContext]
    );
    assert_eq!(
        config(&[("OTEL_PROPAGATORS", "none")]).unwrap().propagators,
        vec![PropagatorName::None]
    );
    let c = config(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).unwrap();
    assert_eq!(
        (c.batch.max_queue_size, c.batch.max_export_batch_size),
        (100, 100)
    );
    assert_eq!(
        config(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=shop,service.version=1%2E2"
        )])
        .unwrap()
        .resource_attributes,
        vec![
            ("service.namespace".to_owned(), "shop".to_owned()),
            ("service.version".to_owned(), "1.2".to_owned())
        ]
    );
}

#[test]
fn logs_exporter_uses_the_logs_signal_path() {
    let c = config(&[
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
    ])
    .unwrap();
    match c.logs_exporter {
        ExporterKind::Otlp(o) => assert_eq!(o.endpoint, "http://c:4318/v1/logs"),
        other => panic!("expected otlp, got {other:?}"),
    }
}
