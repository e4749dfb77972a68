//! The README's broker environment block, taken from the README itself, is all boto3 needs: its
//! `export` lines (with the broker's real address) are the whole environment of a boto3 script
//! that creates clients with no endpoint, region or credentials in code.

mod common;

/// `NAME=VALUE` pairs of the `export` lines in the README's broker code block.
fn readme_broker_env(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("## The broker")
        .nth(1)
        .expect("README has a broker section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the broker section starts with a sh block");
    block
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .flat_map(|line| {
            line.split('#')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("NAME=VALUE in export line");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_works_with_the_readme_environment_alone() {
    let python = tokio::task::spawn_blocking(throughline_testkit::python)
        .await
        .expect("venv task");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let env = readme_broker_env(&readme);
    assert!(
        env.iter()
            .any(|(name, _)| name == "AWS_ENDPOINT_URL_EVENTBRIDGE"),
        "README's broker block sets no AWS_ENDPOINT_URL_EVENTBRIDGE: {env:?}"
    );
    let broker = common::start().await;
    let addr = broker.handle.local_addr().to_string();
    let home = tempfile::tempdir().expect("temp home");
    let script = root.join("crates/broker/tests/readme_env.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path());
    for (name, value) in env {
        command.env(name, value.replace("127.0.0.1:9324", &addr));
    }
    let out = command.output().await.expect("run python");
    assert!(
        out.status.success(),
        "boto3 with the README's environment failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("readme env ok http://{addr}")));
    broker.handle.shutdown().await;
}
