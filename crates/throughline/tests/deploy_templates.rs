//! The deployment files under `deploy/`: every CloudFormation template passes `cfn-lint` with no
//! finding (informational ones included) and every Dockerfile passes `hadolint` (both from the
//! interop venv); the templates name the queues, dead-letter queues, rules, functions, containers,
//! environment variables and ports that the system descriptions (`systems/*/system`, what
//! `throughline up` runs) name — one source of truth, checked, not two lists that drift.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_norway::Value;
use throughline_harness::{Platform, SystemDescription};
use throughline_testkit::workspace_root;

fn deploy_files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = workspace_root().join("deploy").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{suffix} in {}", dir.display());
    files
}

fn venv_tool(name: &str) -> PathBuf {
    let python = throughline_testkit::python();
    let tool = python.parent().expect("the venv's bin").join(name);
    assert!(
        tool.is_file(),
        "{} is missing (tests/python-requirements.txt lists it: rerun scripts/python-venv)",
        tool.display()
    );
    tool
}

#[test]
fn cfn_lint_finds_nothing_in_any_template() {
    let templates = deploy_files("aws", ".yaml");
    // `-c I`: the informational rules too, so nothing is left unexplained.
    let out = Command::new(venv_tool("cfn-lint"))
        .args(["-c", "I", "--"])
        .args(&templates)
        .output()
        .expect("run cfn-lint");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint {templates:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hadolint_finds_nothing_in_any_dockerfile() {
    let dockerfiles = deploy_files("docker", ".Dockerfile");
    for dockerfile in &dockerfiles {
        let out = Command::new(venv_tool("hadolint"))
            .arg("--no-color")
            .arg(dockerfile)
            .output()
            .expect("run hadolint");
        assert!(
            out.status.success(),
            "hadolint {}: {}\n{}",
            dockerfile.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `FROM` lines of a Dockerfile: (image, stage name).
fn stages(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .map(|rest| {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--platform"))
                .collect();
            let name = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("AS"))
                .and_then(|i| words.get(i + 1))
                .map(|s| (*s).to_owned());
            (words.first().copied().unwrap_or("").to_owned(), name)
        })
        .collect()
}

#[test]
fn images_are_multi_stage_with_the_binary_alone_on_the_runtime_base() {
    let read = |name: &str| {
        std::fs::read_to_string(workspace_root().join("deploy/docker").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let lambda = read("lambda.Dockerfile");
    let lambda_stages = stages(&lambda);
    let (last_image, last_name) = lambda_stages.last().expect("a FROM line");
    assert_eq!(last_image, "public.ecr.aws/lambda/provided:al2023");
    assert_eq!(last_name.as_deref(), Some("function"), "the default target");
    assert!(lambda_stages.iter().any(|(image, name)| image
        == "public.ecr.aws/lambda/provided:al2023"
        && name.as_deref() == Some("function-with-extension")));
    // The runtime stages copy the bootstrap (and the extension) and run nothing.
    let runtime_part = &lambda[lambda
        .find("AS function-with-extension")
        .expect("the extension stage")..];
    assert!(
        !runtime_part.lines().any(|l| l.starts_with("RUN ")),
        "{runtime_part}"
    );
    assert!(runtime_part.contains("COPY --from=build /bootstrap ${LAMBDA_RUNTIME_DIR}/bootstrap"));
    assert!(runtime_part.contains("/opt/extensions/throughline-collector"));
    // arm64 and x86_64 both come from the build platform's TARGETARCH.
    assert!(lambda.contains("arm64) arch=--arm64") && lambda.contains("amd64) arch=--x86-64"));
    let extension = workspace_root().join("deploy/docker/throughline-collector-extension");
    let script = std::fs::read_to_string(&extension).expect("the extension wrapper");
    assert!(script.contains("collector --lambda-extension"), "{script}");

    let service = read("service.Dockerfile");
    let service_stages = stages(&service);
    assert_eq!(service_stages.len(), 2, "{service_stages:?}");
    assert!(
        service_stages[1]
            .0
            .starts_with("gcr.io/distroless/cc-debian12")
    );
    let runtime_part = &service[service.rfind("FROM ").expect("FROM")..];
    assert!(
        !runtime_part.lines().any(|l| l.starts_with("RUN ")),
        "{runtime_part}"
    );
    assert_eq!(
        runtime_part
            .lines()
            .filter(|l| l.starts_with("COPY "))
            .count(),
        1,
        "the binary alone: {runtime_part}"
    );
}

// ---- the templates against the system descriptions ----

/// A CloudFormation template, read with its intrinsic functions (short `!Ref` tags or long
/// `Ref:`/`Fn::GetAtt:` keys).
struct Template {
    path: PathBuf,
    resources: BTreeMap<String, Value>,
}

impl Template {
    fn read(name: &str) -> Self {
        Self::read_path(&workspace_root().join("deploy/aws").join(name))
    }

    fn read_path(path: &Path) -> Self {
        let path = path.to_path_buf();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let resources = doc["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .map(|(k, v)| (k.as_str().expect("a logical id").to_owned(), v.clone()))
            .collect();
        Self { path, resources }
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(ty))
            .map(|(id, r)| (id.as_str(), &r["Properties"]))
    }

    fn properties(&self, id: &str) -> &Value {
        &self
            .resources
            .get(id)
            .unwrap_or_else(|| panic!("{}: no resource {id}", self.path.display()))["Properties"]
    }

    /// The logical id a `!Ref X` or `!GetAtt X.Attr` points at.
    fn target(value: &Value) -> Option<String> {
        let (tag, inner) = intrinsic(value)?;
        let text = match inner {
            Value::String(s) => s.clone(),
            Value::Sequence(parts) => parts.first()?.as_str()?.to_owned(),
            _ => return None,
        };
        match tag.as_str() {
            "Ref" => Some(text),
            "GetAtt" => Some(text.split('.').next()?.to_owned()),
            _ => None,
        }
    }

    /// The queue name behind `value`: a literal, or a reference to a queue resource.
    fn queue_name(&self, value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => {
                let id = Self::target(other).unwrap_or_else(|| panic!("not a queue: {other:?}"));
                self.properties(&id)["QueueName"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{id} has no literal QueueName"))
                    .to_owned()
            }
        }
    }

    /// QueueName → (logical id, properties) of every queue.
    fn queues(&self) -> BTreeMap<String, (&str, &Value)> {
        self.of_type("AWS::SQS::Queue")
            .map(|(id, p)| {
                let name = p["QueueName"]
                    .as_str()
                    .expect("a literal QueueName")
                    .to_owned();
                (name, (id, p))
            })
            .collect()
    }
}

/// `(name, argument)` of an intrinsic function in either YAML form.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::"))
                .then(|| (k.trim_start_matches("Fn::").to_owned(), v))
        }
        _ => None,
    }
}

fn yaml_to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).expect("plain YAML is JSON")
}

#[derive(Parser)]
struct OnboardingFlags {
    #[command(flatten)]
    opts: onboarding_system::UpOptions,
}

#[derive(Parser)]
struct EventsFlags {
    #[command(flatten)]
    opts: events_system::UpOptions,
}

#[derive(clap::Parser)]
struct ShopFlags {
    #[command(flatten)]
    opts: shop_system::UpOptions,
}

/// The platform `throughline up` describes systems on, with its default ports (read from `up
/// --help`, so the defaults here are the binary's own).
fn platform() -> Platform {
    let help = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["up", "--help"])
        .output()
        .expect("throughline up --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let default_of = |flag: &str| -> std::net::SocketAddr {
        let at = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("{flag} in `up --help`"));
        let rest = &help[at..];
        let start = rest.find("[default: ").expect("a default") + "[default: ".len();
        rest[start..start + rest[start..].find(']').expect("]")]
            .parse()
            .expect("a socket address")
    };
    Platform {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_throughline")),
        data_dir: PathBuf::from("/data"),
        broker_addr: default_of("--broker-addr"),
        otlp_grpc_addr: default_of("--otlp-grpc-addr"),
        otlp_http_addr: default_of("--otlp-http-addr"),
        query_addr: default_of("--query-addr"),
        settle_secs: 10,
        export_delay_ms: 200,
        database_url: None,
    }
}

/// The variables every part gets from the platform (AWS endpoints and credentials, `OTEL_*`):
/// AWS gives its own, and the templates set the OTLP ones for the sidecar or the extension.
fn platform_env_names(platform: &Platform) -> BTreeSet<String> {
    platform
        .service_env("any")
        .into_iter()
        .map(|(k, _)| k)
        .chain(["AWS_LAMBDA_FUNCTION_NAME".to_owned()])
        .collect()
}

/// A container's or function's environment in the template: name → value (a secret's value is
/// its `ValueFrom`).
fn container_env(container: &Value) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for key in ["Environment", "Secrets"] {
        for pair in container[key].as_sequence().into_iter().flatten() {
            let name = pair["Name"].as_str().expect("Name").to_owned();
            let value = pair.get("Value").or_else(|| pair.get("ValueFrom")).cloned();
            env.insert(name, value.unwrap_or(Value::Null));
        }
    }
    env
}

fn function_env(function: &Value) -> BTreeMap<String, Value> {
    function["Environment"]["Variables"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().expect("a name").to_owned(), v.clone()))
        .collect()
}

/// The value of `--flag` in a part's arguments.
fn arg_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Checks one template against one system's description.
fn check(template: &Template, system: &SystemDescription, platform: &Platform) {
    let where_ = template.path.display().to_string();
    let platform_names = platform_env_names(platform);

    // Queues and their dead-letter queues.
    let queues = template.queues();
    let declared: BTreeSet<&str> = system
        .declarations
        .queues
        .iter()
        .map(|q| q.name.as_str())
        .collect();
    assert_eq!(
        queues.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        declared,
        "{where_}: the queues"
    );
    for queue in &system.declarations.queues {
        let (id, props) = queues[&queue.name];
        match &queue.dead_letter {
            Some(dead) => {
                let redrive = &props["RedrivePolicy"];
                assert_eq!(
                    template.queue_name(&redrive["deadLetterTargetArn"]),
                    dead.queue,
                    "{where_}: {id}'s dead-letter queue"
                );
                assert_eq!(
                    redrive["maxReceiveCount"].as_u64(),
                    Some(u64::from(dead.max_receive_count)),
                    "{where_}: {id}'s maxReceiveCount"
                );
            }
            None => assert!(
                props.get("RedrivePolicy").is_none(),
                "{where_}: {id} redrives"
            ),
        }
    }

    // Rules, their bus and pattern, their targets, and the queue policy that admits each rule.
    let rules: BTreeMap<&str, (&str, &Value)> = template
        .of_type("AWS::Events::Rule")
        .map(|(id, p)| (p["Name"].as_str().expect("a literal rule Name"), (id, p)))
        .collect();
    assert_eq!(
        rules.keys().copied().collect::<BTreeSet<_>>(),
        system
            .declarations
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .collect(),
        "{where_}: the rules"
    );
    for rule in &system.declarations.rules {
        let (rule_id, props) = rules[rule.name.as_str()];
        if let Some(bus) = &rule.event_bus {
            let bus_id = Template::target(&props["EventBusName"]).expect("a bus reference");
            assert_eq!(
                template.properties(&bus_id)["Name"].as_str(),
                Some(bus.as_str()),
                "{where_}: {rule_id}'s bus"
            );
        }
        assert_eq!(
            yaml_to_json(&props["EventPattern"]),
            rule.event_pattern,
            "{where_}: {rule_id}'s pattern"
        );
        let targets: Vec<(String, String)> = props["Targets"]
            .as_sequence()
            .expect("Targets")
            .iter()
            .map(|t| {
                (
                    t["Id"].as_str().expect("Id").to_owned(),
                    template.queue_name(&t["Arn"]),
                )
            })
            .collect();
        let want: Vec<(String, String)> = rule
            .targets
            .iter()
            .map(|t| (t.id.clone(), t.queue.clone()))
            .collect();
        assert_eq!(targets, want, "{where_}: {rule_id}'s targets");
        for (_, queue) in &want {
            let admitted = template.of_type("AWS::SQS::QueuePolicy").any(|(_, p)| {
                let for_queue = p["Queues"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|q| template.queue_name(q) == *queue);
                let statements = p["PolicyDocument"]["Statement"].as_sequence();
                for_queue
                    && statements.into_iter().flatten().any(|s| {
                        s["Principal"]["Service"].as_str() == Some("events.amazonaws.com")
                            && s["Action"].as_str() == Some("sqs:SendMessage")
                            && Template::target(&s["Condition"]["ArnEquals"]["aws:SourceArn"])
                                .as_deref()
                                == Some(rule_id)
                    })
            });
            assert!(
                admitted,
                "{where_}: no queue policy admits {rule_id} to {queue}"
            );
        }
    }

    // Each part: a Lambda function (the parts `up` runs under `throughline lambda`) or an ECS
    // container, with every variable of the part's own, and no name the part does not know.
    let functions: BTreeMap<&str, (&str, &Value)> = template
        .of_type("AWS::Lambda::Function")
        .map(|(id, p)| {
            (
                p["FunctionName"].as_str().expect("a literal FunctionName"),
                (id, p),
            )
        })
        .collect();
    let containers: BTreeMap<&str, &Value> = template
        .of_type("AWS::ECS::TaskDefinition")
        .flat_map(|(_, p)| {
            p["ContainerDefinitions"]
                .as_sequence()
                .into_iter()
                .flatten()
        })
        .map(|c| (c["Name"].as_str().expect("a container Name"), c))
        .collect();
    let sidecar = containers
        .get("collector")
        .unwrap_or_else(|| panic!("{where_}: no collector sidecar"));
    let sidecar_args: Vec<String> = sidecar["Command"]
        .as_sequence()
        .expect("the collector's Command")
        .iter()
        .map(|a| a.as_str().expect("a literal argument").to_owned())
        .collect();
    assert_eq!(
        arg_of(&sidecar_args, "--grpc-addr").map(port_of),
        Some(platform.otlp_grpc_addr.port()),
        "{where_}: the sidecar's OTLP/gRPC port"
    );
    assert_eq!(
        arg_of(&sidecar_args, "--http-addr").map(port_of),
        Some(platform.otlp_http_addr.port()),
        "{where_}: the sidecar's OTLP/HTTP port"
    );
    let mut checked = 0;
    for part in &system.parts {
        let own: BTreeMap<&str, &str> = part
            .env
            .iter()
            .filter(|(k, _)| !platform_names.contains(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let is_lambda = part.args.first().map(String::as_str) == Some("lambda");
        let (env, what) = if is_lambda {
            let Some((id, function)) = functions.get(part.name.as_str()) else {
                panic!("{where_}: no Lambda function {}", part.name);
            };
            // The event source mapping: the host's queue and batch size.
            let mapping = template
                .of_type("AWS::Lambda::EventSourceMapping")
                .find(|(_, m)| Template::target(&m["FunctionName"]).as_deref() == Some(id))
                .map(|(_, m)| m)
                .unwrap_or_else(|| panic!("{where_}: no event source mapping for {id}"));
            assert_eq!(
                template.queue_name(&mapping["EventSourceArn"]),
                arg_of(&part.args, "--queue").expect("--queue"),
                "{where_}: {id}'s queue"
            );
            assert_eq!(
                mapping["BatchSize"]
                    .as_u64()
                    .map(|b| b.to_string())
                    .as_deref(),
                arg_of(&part.args, "--batch-size"),
                "{where_}: {id}'s batch size"
            );
            assert_eq!(
                mapping["FunctionResponseTypes"],
                serde_norway::from_str::<Value>("[ReportBatchItemFailures]").expect("yaml"),
                "{where_}: {id} reports batch item failures"
            );
            assert_eq!(
                arg_of(&part.args, "--function-name"),
                Some(part.name.as_str()),
                "the host names the function as the template does"
            );
            (function_env(function), format!("function {id}"))
        } else if let Some(container) = containers.get(part.name.as_str()) {
            let env = container_env(container);
            // The port the part listens on is the container's and the *_ADDR variable's.
            if let Some(ready) = part.ready {
                let ports: Vec<u64> = container["PortMappings"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["ContainerPort"].as_u64())
                    .collect();
                assert_eq!(
                    ports,
                    vec![u64::from(ready.port())],
                    "{where_}: {}'s port",
                    part.name
                );
                for (name, value) in &own {
                    if name.ends_with("_ADDR") {
                        assert_eq!(
                            env.get(*name).and_then(Value::as_str).map(port_of),
                            Some(port_of(value)),
                            "{where_}: {}'s {name}",
                            part.name
                        );
                    }
                }
            }
            // The service exports to the sidecar on localhost.
            assert_eq!(
                env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .and_then(Value::as_str),
                Some(format!("http://127.0.0.1:{}", platform.otlp_grpc_addr.port()).as_str()),
                "{where_}: {} exports to the sidecar",
                part.name
            );
            (env, format!("container {}", part.name))
        } else {
            // A local stand-in (the webhook receiver for external-service.com) is not deployed.
            assert!(
                part.name.ends_with("webhook"),
                "{where_}: {} is neither a function nor a container",
                part.name
            );
            continue;
        };
        checked += 1;
        assert_eq!(
            env.get("OTEL_SERVICE_NAME").and_then(Value::as_str),
            Some(part.name.as_str()),
            "{where_}: {what}'s service name"
        );
        for name in own.keys() {
            assert!(env.contains_key(*name), "{where_}: {what} lacks {name}");
        }
        for name in env.keys() {
            let known = own.contains_key(name.as_str())
                || platform_names.contains(name)
                || name.starts_with("OTEL_");
            assert!(
                known,
                "{where_}: {what} sets {name}, which {} does not use",
                part.name
            );
        }
        // Each queue a part names exists.
        for (name, value) in &own {
            if name.ends_with("_QUEUE_NAME") {
                assert_eq!(
                    template.queue_name(&env[*name]),
                    *value,
                    "{where_}: {what}'s {name}"
                );
            }
        }
    }
    assert!(checked >= 2, "{where_}: {checked} parts checked");
}

fn describe_onboarding(platform: &Platform) -> SystemDescription {
    let opts = OnboardingFlags::parse_from(["up"]).opts;
    onboarding_system::describe(platform, &opts)
}

fn describe_events(platform: &Platform) -> SystemDescription {
    let opts = EventsFlags::parse_from(["up"]).opts;
    events_system::describe(platform, &opts)
}

#[test]
fn the_onboarding_template_matches_the_system_description() {
    let platform = platform();
    check(
        &Template::read("onboarding.yaml"),
        &describe_onboarding(&platform),
        &platform,
    );
}

#[test]
fn the_events_template_matches_the_system_description() {
    let platform = platform();
    check(
        &Template::read("events.yaml"),
        &describe_events(&platform),
        &platform,
    );
}

#[test]
fn the_shop_template_matches_the_system_description() {
    let platform = platform();
    let opts = ShopFlags::parse_from(["up"]).opts;
    check(
        &Template::read("shop.yaml"),
        &shop_system::describe(&platform, &opts),
        &platform,
    );
}

/// The check is not vacuous: a template with a renamed queue, a dropped variable or a moved
/// port fails it.
#[test]
fn a_drifted_template_fails_the_check() {
    let platform = platform();
    let system = describe_onboarding(&platform);
    let original = std::fs::read_to_string(workspace_root().join("deploy/aws/onboarding.yaml"))
        .expect("the template");
    let drifts = [
        (
            "QueueName: onboarding-queue\n",
            "QueueName: onboarding-jobs\n",
        ),
        ("          ONBOARDING_OUTBOX_DIR: /tmp/outbox\n", ""),
        ("ContainerPort: 8000", "ContainerPort: 8080"),
        ("maxReceiveCount: 3", "maxReceiveCount: 5"),
        ("- 127.0.0.1:4318", "- 127.0.0.1:4319"),
        (
            "FunctionResponseTypes: [ReportBatchItemFailures]",
            "FunctionResponseTypes: []",
        ),
    ];
    for (from, to) in drifts {
        assert!(original.contains(from), "the template holds {from:?}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("drifted.yaml");
        std::fs::write(&path, original.replacen(from, to, 1)).expect("write");
        let template = Template::read_path(&path);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&template, &system, &platform)
        }));
        assert!(failed.is_err(), "the check missed {from:?} → {to:?}");
    }
}
