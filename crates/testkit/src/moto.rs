//! [`MotoS3`]: moto's standalone server (`moto[server]` from the interop venv), an S3 peer
//! nobody here wrote, on a free loopback port, with boto3 to set it up and read it back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, free_loopback_addr, python, wait_for_port};

/// The access key pair the tests give moto (it accepts any).
pub const MOTO_CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

/// A moto S3 server, killed when dropped.
#[derive(Debug)]
pub struct MotoS3 {
    addr: SocketAddr,
    _child: ChildGuard,
}

impl MotoS3 {
    /// Starts the server and creates `bucket` with boto3; fails the test saying what is missing.
    pub fn start(bucket: &str) -> Self {
        let python = python();
        let addr = free_loopback_addr();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto.server with {}: {e}", python.display()));
        let moto = Self {
            addr,
            _child: ChildGuard(child),
        };
        assert!(
            wait_for_port(addr, Duration::from_secs(30)),
            "moto.server did not listen on {addr} within 30 s (is moto[server] in the venv? scripts/python-venv)"
        );
        moto.boto3(
            "s3.create_bucket(Bucket=sys.argv[2])",
            &[bucket],
            "create the bucket",
        );
        moto
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `code` with `s3`, a boto3 client of this server, and `sys.argv[2..]` = `args`;
    /// returns its standard output.
    pub fn boto3(&self, code: &str, args: &[&str], what: &str) -> String {
        let script = format!(
            "import boto3, json, sys\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n\
             {code}\n"
        );
        let out = Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("boto3 could not {what}: {e}"));
        assert!(
            out.status.success(),
            "boto3 could not {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every object under `prefix` in `bucket`, parsed as JSON, by key.
    pub fn json_objects(&self, bucket: &str, prefix: &str) -> HashMap<String, serde_json::Value> {
        let out = self.boto3(
            "listed = s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3])\n\
             print(json.dumps({o['Key']: json.loads(s3.get_object(Bucket=sys.argv[2], \
             Key=o['Key'])['Body'].read()) for o in listed.get('Contents', [])}))",
            &[bucket, prefix],
            "read the objects back",
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}
