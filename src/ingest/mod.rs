//! The receiving end of the data path: Meta's POST -> [`signature`] (a
//! [`signature::VerifiedBody`] can only come from a valid `X-Hub-Signature-256`) ->
//! [`normalize`] (one CloudEvent per item, keyed by contact) -> [`receiver`] (the HTTP
//! handlers that publish and answer).

pub mod normalize;
pub mod receiver;
pub mod signature;
