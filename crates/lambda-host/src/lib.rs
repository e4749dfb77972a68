//! A host for the AWS Lambda Runtime API with an SQS event source mapping.
