//! windowkeeper, along its data path:
//!
//! 1. [`ingest`]: Meta's POST -> `signature` (a verified body is its own type) -> `normalize`
//!    (one CloudEvent per item, keyed by contact) -> `receiver` (publish, then answer).
//! 2. [`kafka`]: client settings, the publisher, topics, the readiness probe.
//! 3. [`tracker`]: the consumer group that restores state, routes between keys, fires timers
//!    by each partition's log time and writes events, state and offsets in one transaction.
//! 4. [`window`]: the rules themselves, pure (no I/O; time is a parameter).
//! 5. [`api`]: the send-decision API over a read view of the state topic; [`status`] says it
//!    in words. Around them: [`config`] (every flag), [`metrics`] (every metric), [`app`]
//!    (starting and stopping), [`domain`] (ids and instants), [`cloudevent`], [`http`], [`admin`].

pub mod admin;
pub mod api;
pub mod app;
pub mod cloudevent;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod metrics;
pub mod status;
pub mod tracker;
pub mod window;
