//! A durable local broker that speaks the AWS SQS JSON protocol and EventBridge PutEvents.
