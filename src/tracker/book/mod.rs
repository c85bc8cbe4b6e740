//! The tracker's book: every assigned partition's contacts, their timers, and what each input
//! or tick must write. No Kafka here — the caller feeds records in and writes the `Outbox` out,
//! so the routing rules (aliases, moves) are tested without a broker.
//!
//! This file holds the partitions, applying inputs and writing or forgetting state;
//! [`routing`] moves state and inputs between keys, [`timers`] fires deadlines.

mod contacts;
mod routing;
mod timers;

pub use contacts::Contacts;
use contacts::Stored;
use routing::*;
use timers::*;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use super::input::{
    decode, AliasData, ForwardedData, MovedState, NotJson, Statement, TrackerInput,
    MAX_FORWARD_HOPS, TYPE_ALIAS, TYPE_FORWARDED, TYPE_MOVED,
};
use super::records::{
    marketing_event, marketing_event_id, routing_record, state_record, window_event,
    window_event_id, Alias, Armed, Contact, TYPE_MARKETING_CHANGED,
};
use crate::domain::{ContactKey, UnixSeconds, WaId};
use crate::window::marketing::effective;
use crate::window::sanity::{self, Implausible};
use crate::window::{ContactWindows, EventType, WindowConfig, WindowEvent, WindowKind};

/// Everything one batch of inputs or one tick must write, in the order it must be written:
/// routed records and window events first, state records once those are acknowledged.
#[derive(Default)]
pub struct Outbox {
    pub routed: Vec<(ContactKey, Vec<u8>)>,
    pub events: Vec<EmittedEvent>,
    /// `(partition, key, value)`; `None` is a tombstone.
    pub states: Vec<(i32, ContactKey, Option<Vec<u8>>)>,
    /// Inputs refused by the sanity rules, with their contact: counted and logged.
    pub rejected: Vec<(ContactKey, Implausible)>,
    /// Routing records (by type) that could not be read, with their key: counted and logged.
    pub unreadable: Vec<(ContactKey, &'static str)>,
}

pub struct EmittedEvent {
    pub key: ContactKey,
    pub id: String,
    pub type_name: &'static str,
    pub payload: Vec<u8>,
    /// When it was due, for timer lateness.
    pub due: Option<UnixSeconds>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.routed.is_empty() && self.events.is_empty() && self.states.is_empty()
    }
}

/// A partition's deadlines, lazily invalidated: an entry whose contact no longer has that
/// deadline is skipped when popped. Per partition, since each partition has its own clock.
/// A contact is named by its key's hash in the partition's [`Contacts`]: 8 bytes instead of a
/// key, and when keys share a hash every one of them armed for that instant is due.
type Timers = BinaryHeap<Reverse<(UnixSeconds, u64)>>;

#[derive(Default)]
struct Partition {
    /// Changed only through [`Partition::take`] and [`Partition::put`], which keep `open` in
    /// step.
    contacts: Contacts,
    timers: Timers,
    /// Open windows by kind ([`WindowKind::ALL`] order), kept as contacts come and go: the
    /// gauge then costs nothing, where counting a million contacts stalled the runtime.
    open: [i64; 3],
}

impl Partition {
    fn new(contacts: Contacts, timers: Timers) -> Self {
        let mut open = [0; 3];
        for contact in contacts.values() {
            count_open(&mut open, contact, 1);
        }
        Self {
            contacts,
            timers,
            open,
        }
    }

    fn take(&mut self, key: &ContactKey) -> Option<Box<Stored>> {
        let stored = self.contacts.remove(key.as_str())?;
        count_open(&mut self.open, &stored.contact, -1);
        Some(stored)
    }

    /// `key`'s contact taken out, or a new one.
    fn take_or_new(&mut self, key: &ContactKey) -> Box<Stored> {
        self.take(key)
            .unwrap_or_else(|| Stored::new(key, Contact::default()))
    }

    fn put(&mut self, stored: Box<Stored>) {
        count_open(&mut self.open, &stored.contact, 1);
        if let Some(replaced) = self.contacts.put(stored) {
            count_open(&mut self.open, &replaced.contact, -1);
        }
    }
}

fn count_open(open: &mut [i64; 3], contact: &Contact, sign: i64) {
    for (count, kind) in open.iter_mut().zip(WindowKind::ALL) {
        if contact.windows.is_open(kind) {
            *count += sign;
        }
    }
}

pub struct Book {
    cfg: Arc<WindowConfig>,
    partitions: HashMap<i32, Partition>,
}

impl Book {
    pub fn new(cfg: WindowConfig) -> Self {
        Self {
            cfg: Arc::new(cfg),
            partitions: HashMap::new(),
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    pub fn has_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Installs a partition's restored contacts and arms their timers.
    pub fn restore_partition(&mut self, partition: i32, mut contacts: Contacts) {
        let mut timers = Timers::new();
        for (hash, contact) in contacts.hashed_mut() {
            contact.armed = Armed::NONE;
            arm(&mut timers, &self.cfg, hash, contact);
        }
        self.partitions
            .insert(partition, Partition::new(contacts, timers));
    }

    /// A revoked partition's state is dropped; its new owner restores it from the state topic.
    pub fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    pub fn contact_count(&self) -> usize {
        self.partitions.values().map(|p| p.contacts.len()).sum()
    }

    /// Open windows by kind, for the gauge.
    pub fn open_windows(&self) -> [(WindowKind, i64); 3] {
        let mut open = [0; 3];
        for partition in self.partitions.values() {
            for (total, count) in open.iter_mut().zip(partition.open) {
                *total += count;
            }
        }
        std::array::from_fn(|i| (WindowKind::ALL[i], open[i]))
    }

    /// The same counts, counted contact by contact: what the kept counts must equal.
    #[cfg(test)]
    pub fn recount_open_windows(&self) -> [(WindowKind, i64); 3] {
        std::array::from_fn(|i| {
            let kind = WindowKind::ALL[i];
            let open = self
                .partitions
                .values()
                .flat_map(|p| p.contacts.values())
                .filter(|contact| contact.windows.is_open(kind))
                .count();
            (kind, open as i64)
        })
    }

    pub fn contact(&self, partition: i32, key: &ContactKey) -> Option<&Contact> {
        self.partitions.get(&partition)?.contacts.get(key.as_str())
    }

    /// One inbound record. `arrival` is when the receiver took it (the record's timestamp):
    /// it decides lateness, so a tracker catching up after downtime judges messages by when
    /// they reached us, not by when it got round to them. A value that is not JSON is left
    /// for the caller to report, with the record's place in the log.
    pub fn apply_record(
        &mut self,
        partition: i32,
        key: &ContactKey,
        value: &[u8],
        arrival: UnixSeconds,
        now: UnixSeconds,
        out: &mut Outbox,
    ) -> Result<(), NotJson> {
        self.apply_value(partition, key, value, 0, arrival, now, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_value(
        &mut self,
        partition: i32,
        key: &ContactKey,
        value: &[u8],
        hops: u8,
        arrival: UnixSeconds,
        now: UnixSeconds,
        out: &mut Outbox,
    ) -> Result<(), NotJson> {
        let alias_target = self
            .contact(partition, key)
            .and_then(|c| c.alias_target(now))
            .cloned();
        match decode(value, &self.cfg)? {
            TrackerInput::Ignored => {}
            TrackerInput::Unreadable(record_type) => {
                out.unreadable.push((key.clone(), record_type))
            }
            TrackerInput::Rejected(implausible) => out.rejected.push((key.clone(), implausible)),
            TrackerInput::Forwarded { event, hops } => {
                if hops > MAX_FORWARD_HOPS {
                    // Counted and logged once by the tracker, like any record it cannot use.
                    out.unreadable
                        .push((key.clone(), "windowkeeper.contact.forwarded (routing loop)"));
                    return Ok(());
                }
                return self.apply_value(
                    partition,
                    key,
                    event.get().as_bytes(),
                    hops,
                    arrival,
                    now,
                    out,
                );
            }
            TrackerInput::Rules { .. } if alias_target.is_some() => {
                // Passed on untouched, as it was written.
                if let Some(target) = alias_target {
                    forward(&target, value, hops, now, out);
                }
            }
            TrackerInput::Rules { input, wa_id } => {
                // Never applied, so the contact's later items are judged as if it never came.
                if let Err(implausible) = sanity::check(input.at(), arrival) {
                    out.rejected.push((key.clone(), implausible));
                    return Ok(());
                }
                let cfg = Arc::clone(&self.cfg);
                self.change(partition, key, now, out, |contact, events, routed| {
                    match &input {
                        Statement::Window(input) => {
                            contact.windows.apply(input, arrival, &cfg, events)
                        }
                        Statement::Marketing(statement) => {
                            contact.apply_marketing(*statement);
                        }
                    }
                    contact.windows.tick(now, &cfg, events);
                    let opened = events.iter().any(|e| {
                        matches!(e.event, EventType::Opened)
                            && e.window == WindowKind::CustomerService
                    });
                    remember_phone_number(contact, key, wa_id, opened, now, routed);
                });
            }
            TrackerInput::UserIdChanged { to, wa_id, at } => {
                self.user_id_changed(partition, key, to, wa_id, at, now, out)
            }
            TrackerInput::Moved(moved) => self.moved_here(partition, key, moved, now, out),
            TrackerInput::Alias { target } => self.alias_to(partition, key, target, now, out),
        }
        Ok(())
    }

    /// Runs `update` on a contact and writes whatever changed: events, routed records, state.
    fn change(
        &mut self,
        partition: i32,
        key: &ContactKey,
        now: UnixSeconds,
        out: &mut Outbox,
        update: impl FnOnce(&mut Contact, &mut Vec<WindowEvent>, &mut Vec<(ContactKey, Vec<u8>)>),
    ) {
        let mut stored = self
            .partitions
            .entry(partition)
            .or_default()
            .take_or_new(key);
        let contact = &mut stored.contact;
        let before = Contact::clone(contact);
        let mut events = Vec::new();
        update(contact, &mut events, &mut out.routed);
        self.push_events(key, contact, &events, now, out);
        if effective(before.marketing()) != effective(contact.marketing()) {
            if let Some(preference) = contact.marketing() {
                out.events.push(EmittedEvent {
                    key: key.clone(),
                    id: marketing_event_id(key, preference),
                    type_name: TYPE_MARKETING_CHANGED,
                    payload: marketing_event(key, contact.wa_id.as_ref(), preference),
                    due: None,
                });
            }
        }
        // Windows nothing can reopen any more are forgotten; the preference is kept.
        if contact.marketing.is_some() && has_forgettable_windows(contact, now, &self.cfg) {
            contact.windows = ContactWindows::default();
        }
        let forget = before != Contact::default() && self.forgettable(contact, now);
        if *contact != before || forget {
            self.store(partition, key, stored, now, out);
        } else if *contact != Contact::default() {
            let slot = self.partitions.entry(partition).or_default();
            let hash = slot.contacts.hash(key.as_str());
            arm(&mut slot.timers, &self.cfg, hash, &mut stored.contact);
            slot.put(stored);
        }
    }

    fn push_events(
        &self,
        key: &ContactKey,
        contact: &Contact,
        events: &[WindowEvent],
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        for event in events {
            let due = match event.event {
                EventType::Opened => None,
                EventType::Closing { lead_secs } => Some(event.expires_at.minus(lead_secs)),
                EventType::Closed { .. } => Some(event.expires_at),
            };
            out.events.push(EmittedEvent {
                key: key.clone(),
                id: window_event_id(key, event),
                type_name: event.type_name(),
                payload: window_event(key, contact.wa_id.as_ref(), event, now),
                due,
            });
        }
    }

    /// Keeps (or forgets) a contact, writes its state record or tombstone, and arms its timer.
    fn store(
        &mut self,
        partition: i32,
        key: &ContactKey,
        mut stored: Box<Stored>,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        let forgettable = self.forgettable(&stored.contact, now);
        let slot = self.partitions.entry(partition).or_default();
        if forgettable {
            slot.take(key);
            out.states.push((partition, key.clone(), None));
            return;
        }
        out.states.push((
            partition,
            key.clone(),
            Some(state_record(key, &stored.contact, now)),
        ));
        let hash = slot.contacts.hash(key.as_str());
        arm(&mut slot.timers, &self.cfg, hash, &mut stored.contact);
        slot.put(stored);
    }

    fn forgettable(&self, contact: &Contact, now: UnixSeconds) -> bool {
        contact.windows.is_forgettable(now, &self.cfg)
            && contact.alias_target(now).is_none()
            && contact.marketing.is_none()
    }
}

/// Window memory that can be dropped: nothing open, nothing remembered that still matters.
fn has_forgettable_windows(contact: &Contact, now: UnixSeconds, cfg: &WindowConfig) -> bool {
    contact.windows != ContactWindows::default() && contact.windows.is_forgettable(now, cfg)
}
