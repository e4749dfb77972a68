//! Runs `boto3_interop.py` (boto3 from the interop venv) against an in-process broker.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_operation() {
    let python = tokio::task::spawn_blocking(throughline_testkit::python).await.expect("venv task");
    let broker = common::start().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boto3_interop.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg(broker.handle.endpoint_url())
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("boto3 interop ok"));
    broker.handle.shutdown().await;
}
