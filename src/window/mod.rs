//! Messaging window rules (filled in below).
