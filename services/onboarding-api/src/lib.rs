//! The onboarding API of the reference system: POST /onboard to SQS.
