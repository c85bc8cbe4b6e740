//! windowkeeper: Meta's WhatsApp webhooks -> verification -> normalization -> Kafka ->
//! window state machine -> window events.

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
