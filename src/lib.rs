//! windowkeeper: Meta's WhatsApp webhooks -> verification -> normalization -> Kafka ->
//! window state machine -> window events.

pub mod cloudevent;
pub mod domain;
pub mod normalize;
pub mod signature;
pub mod window;
pub mod admin;
pub mod app;
pub mod config;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod receiver;
pub mod tracker;
pub mod embedded;
