//! A minimal SQS function on the real `lambda_runtime` crate, for the host's benchmarks: it
//! answers every batch with no failures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

async fn handle(_event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Ok(SqsBatchResponse::default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
