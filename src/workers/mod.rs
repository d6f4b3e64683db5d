//! Background workers: each claims a job from an outbox table, acts, and records the result.

pub mod posting;
