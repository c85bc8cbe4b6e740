//! The tracker's book: every assigned partition's contacts, their timers, and what each input
//! or tick must write. No Kafka here — the caller feeds records in and writes the `Outbox` out,
//! so the routing rules (aliases, moves) are tested without a broker.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::input::{
    decode, AliasData, ForwardedData, MovedState, Statement, TrackerInput, MAX_FORWARD_HOPS,
    TYPE_ALIAS, TYPE_FORWARDED, TYPE_MOVED,
};
use super::records::{
    marketing_event, marketing_event_id, routing_record, state_record, window_event,
    window_event_id, Alias, Contact, TYPE_MARKETING_CHANGED,
};
use crate::domain::{ContactKey, CustomerId, UnixSeconds, WaId};
use crate::window::marketing::effective;
use crate::window::sanity::{self, Implausible};
use crate::window::{
    ContactWindows, EventType, MarketingPreference, WindowConfig, WindowEvent, WindowKind,
};

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
type Timers = BinaryHeap<Reverse<(UnixSeconds, ContactKey)>>;

#[derive(Default)]
struct Partition {
    /// Boxed: the index stays dense (a pointer per slot) however large a contact is, which
    /// matters more than the extra allocation at a million contacts.
    contacts: HashMap<ContactKey, Box<Contact>>,
    timers: Timers,
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
    pub fn restore_partition(
        &mut self,
        partition: i32,
        mut contacts: HashMap<ContactKey, Box<Contact>>,
    ) {
        let mut timers = Timers::new();
        for (key, contact) in &mut contacts {
            contact.armed = None;
            arm(&mut timers, &self.cfg, key, contact);
        }
        self.partitions
            .insert(partition, Partition { contacts, timers });
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
        WindowKind::ALL.map(|kind| {
            let open = self
                .partitions
                .values()
                .flat_map(|p| p.contacts.values())
                .filter(|contact| contact.windows.is_open(kind))
                .count();
            (kind, open as i64)
        })
    }

    /// The earliest deadline of any partition.
    pub fn next_timer(&self) -> Option<UnixSeconds> {
        self.partitions
            .keys()
            .filter_map(|p| self.next_timer_of(*p))
            .min()
    }

    /// The earliest deadline of one partition.
    pub fn next_timer_of(&self, partition: i32) -> Option<UnixSeconds> {
        self.partitions
            .get(&partition)?
            .timers
            .peek()
            .map(|Reverse((at, _))| *at)
    }

    pub fn contact(&self, partition: i32, key: &ContactKey) -> Option<&Contact> {
        self.partitions
            .get(&partition)?
            .contacts
            .get(key)
            .map(|c| &**c)
    }

    /// One inbound record. `arrival` is when the receiver took it (the record's timestamp):
    /// it decides lateness, so a tracker catching up after downtime judges messages by when
    /// they reached us, not by when it got round to them.
    pub fn apply_record(
        &mut self,
        partition: i32,
        key: &ContactKey,
        value: Value,
        arrival: UnixSeconds,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        self.apply_value(partition, key, value, 0, arrival, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_value(
        &mut self,
        partition: i32,
        key: &ContactKey,
        value: Value,
        hops: u8,
        arrival: UnixSeconds,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        let alias_target = self
            .contact(partition, key)
            .and_then(|c| c.alias_target(now))
            .cloned();
        // Only an aliased key needs the original again, to pass it on untouched.
        let original = alias_target.as_ref().map(|_| value.clone());
        match decode(value, &self.cfg) {
            TrackerInput::Ignored => {}
            TrackerInput::Unreadable(record_type) => {
                out.unreadable.push((key.clone(), record_type))
            }
            TrackerInput::Rejected(implausible) => out.rejected.push((key.clone(), implausible)),
            TrackerInput::Forwarded { event, hops } => {
                if hops > MAX_FORWARD_HOPS {
                    tracing::warn!(contact = %key, hops, "dropping a forwarded record caught in a routing loop");
                    return;
                }
                self.apply_value(partition, key, *event, hops, arrival, now, out);
            }
            TrackerInput::Rules { .. } if alias_target.is_some() => {
                if let (Some(target), Some(original)) = (alias_target, original) {
                    forward(&target, original, hops, now, out);
                }
            }
            TrackerInput::Rules { input, wa_id } => {
                // Never applied, so the contact's later items are judged as if it never came.
                if let Err(implausible) = sanity::check(input.at(), arrival) {
                    out.rejected.push((key.clone(), implausible));
                    return;
                }
                let cfg = Arc::clone(&self.cfg);
                self.change(partition, key, now, out, |contact, events, routed| {
                    match &input {
                        Statement::Window(input) => {
                            contact.windows.apply(input, arrival, &cfg, events)
                        }
                        Statement::Marketing(statement) => {
                            MarketingPreference::apply(&mut contact.marketing, *statement);
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
                if &to == key {
                    return;
                }
                // A newer change of this id already moved its state on: this one is older.
                let superseded = self
                    .contact(partition, key)
                    .and_then(|c| c.alias.as_deref())
                    .and_then(|alias| alias.changed_at)
                    .zip(at)
                    .is_some_and(|(newer, at)| newer >= at);
                if superseded {
                    return;
                }
                let cfg_until =
                    now.plus(self.cfg.service_window_secs + self.cfg.free_entry_window_secs);
                let partition_map = self.partitions.entry(partition).or_default();
                let previous = *partition_map.contacts.remove(key).unwrap_or_default();
                let moved = MovedState {
                    from: key.clone(),
                    windows: previous.windows,
                    wa_id: wa_id.or(previous.wa_id),
                    changed_at: at,
                    marketing: previous.marketing,
                };
                let id = format!("{}:moved:{}", key.as_str(), to.as_str());
                out.routed.push((
                    to.clone(),
                    routing_record(&to, TYPE_MOVED, &id, now, &moved),
                ));
                // Stragglers still addressed to the old id (reordered messages, statuses) follow.
                let stub = Contact {
                    alias: Some(Box::new(Alias {
                        target: to,
                        until: cfg_until,
                        changed_at: at,
                    })),
                    ..Contact::default()
                };
                self.store(partition, key, Box::new(stub), now, out);
            }
            TrackerInput::Moved(moved) => {
                // This id was itself changed by a newer change than the one that moved the
                // state here: the state follows to the newest id.
                let onward = self
                    .contact(partition, key)
                    .and_then(|c| c.alias.as_deref())
                    .filter(|alias| alias.until > now && alias.target != *key)
                    .filter(|alias| {
                        alias
                            .changed_at
                            .is_some_and(|newer| moved.changed_at.is_none_or(|older| older < newer))
                    })
                    .map(|alias| alias.target.clone());
                if let Some(target) = onward {
                    let id = format!(
                        "{}:moved:{}:{}",
                        key.as_str(),
                        target.as_str(),
                        moved.changed_at.map_or(0, |at| at.0)
                    );
                    out.routed.push((
                        target.clone(),
                        routing_record(&target, TYPE_MOVED, &id, now, &moved),
                    ));
                    return;
                }
                let cfg = Arc::clone(&self.cfg);
                self.change(partition, key, now, out, |contact, events, routed| {
                    contact.alias = None;
                    contact.windows.absorb(moved.windows, now, &cfg, events);
                    if let Some(theirs) = moved.marketing {
                        MarketingPreference::apply(&mut contact.marketing, theirs);
                    }
                    contact.windows.tick(now, &cfg, events);
                    remember_phone_number(contact, key, moved.wa_id, true, now, routed);
                });
            }
            TrackerInput::Alias { target } => {
                if &target == key {
                    return;
                }
                let until =
                    now.plus(self.cfg.service_window_secs + self.cfg.free_entry_window_secs);
                let partition_map = self.partitions.entry(partition).or_default();
                let previous = *partition_map.contacts.remove(key).unwrap_or_default();
                // Windows kept under the phone number before a BSUID was known join the BSUID's.
                if !previous.windows.is_forgettable(now, &self.cfg) || previous.marketing.is_some()
                {
                    let moved = MovedState {
                        from: key.clone(),
                        windows: previous.windows,
                        wa_id: None,
                        changed_at: None,
                        marketing: previous.marketing,
                    };
                    let id = format!("{}:moved:{}", key.as_str(), target.as_str());
                    out.routed.push((
                        target.clone(),
                        routing_record(&target, TYPE_MOVED, &id, now, &moved),
                    ));
                }
                let stub = Contact {
                    alias: Some(Box::new(Alias {
                        target,
                        until,
                        changed_at: None,
                    })),
                    ..Contact::default()
                };
                self.store(partition, key, Box::new(stub), now, out);
            }
        }
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
        let mut contact = self
            .partitions
            .entry(partition)
            .or_default()
            .contacts
            .remove(key)
            .unwrap_or_default();
        let before = Contact::clone(&contact);
        let mut events = Vec::new();
        update(&mut contact, &mut events, &mut out.routed);
        self.push_events(key, &contact, &events, now, out);
        if effective(before.marketing.as_ref()) != effective(contact.marketing.as_ref()) {
            if let Some(preference) = &contact.marketing {
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
        if contact.marketing.is_some() && has_forgettable_windows(&contact, now, &self.cfg) {
            contact.windows = ContactWindows::default();
        }
        let forget = before != Contact::default() && self.forgettable(&contact, now);
        if *contact != before || forget {
            self.store(partition, key, contact, now, out);
        } else if *contact != Contact::default() {
            let slot = self.partitions.entry(partition).or_default();
            arm(&mut slot.timers, &self.cfg, key, &mut contact);
            slot.contacts.insert(key.clone(), contact);
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
        mut contact: Box<Contact>,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        let forgettable = self.forgettable(&contact, now);
        let slot = self.partitions.entry(partition).or_default();
        if forgettable {
            slot.contacts.remove(key);
            out.states.push((partition, key.clone(), None));
            return;
        }
        out.states.push((
            partition,
            key.clone(),
            Some(state_record(key, &contact, now)),
        ));
        arm(&mut slot.timers, &self.cfg, key, &mut contact);
        slot.contacts.insert(key.clone(), contact);
    }

    fn forgettable(&self, contact: &Contact, now: UnixSeconds) -> bool {
        contact.windows.is_forgettable(now, &self.cfg)
            && contact.alias_target(now).is_none()
            && contact.marketing.is_none()
    }

    /// Fires every timer of every partition due at `now`.
    pub fn tick(&mut self, now: UnixSeconds, out: &mut Outbox) {
        let mut partitions: Vec<i32> = self.partitions.keys().copied().collect();
        partitions.sort_unstable();
        for partition in partitions {
            self.tick_partition(partition, now, out);
        }
    }

    /// Fires every timer of one partition due at `now`, that partition's clock.
    pub fn tick_partition(&mut self, partition: i32, now: UnixSeconds, out: &mut Outbox) {
        loop {
            let Some(slot) = self.partitions.get_mut(&partition) else {
                return;
            };
            if slot.timers.peek().is_none_or(|Reverse((at, _))| *at > now) {
                return;
            }
            let Some(Reverse((at, key))) = slot.timers.pop() else {
                return;
            };
            let Some(contact) = slot.contacts.get_mut(&key) else {
                continue;
            };
            // A stale entry: the contact was re-armed for an earlier instant since.
            if contact.armed != Some(at) {
                continue;
            }
            contact.armed = None;
            // Its deadline moved later (an extension): wait for that instead.
            if next_deadline(contact, &self.cfg).is_some_and(|next| next > now) {
                arm(&mut slot.timers, &self.cfg, &key, contact);
                continue;
            }
            let cfg = Arc::clone(&self.cfg);
            self.change(partition, &key, now, out, |contact, events, _| {
                contact.windows.tick(now, &cfg, events);
                if contact.alias.as_ref().is_some_and(|a| a.until <= now) {
                    contact.alias = None;
                }
            });
        }
    }
}

/// Gives a contact a timer entry for its next deadline, unless it already has one that fires
/// no later: an extension then costs no new entry, and the old one re-arms when it fires.
fn arm(timers: &mut Timers, cfg: &WindowConfig, key: &ContactKey, contact: &mut Contact) {
    let Some(at) = next_deadline(contact, cfg) else {
        return;
    };
    if contact.armed.is_some_and(|armed| armed <= at) {
        return;
    }
    contact.armed = Some(at);
    timers.push(Reverse((at, key.clone())));
}

/// The next instant this contact needs attention: a warning or close, the end of its alias,
/// or the moment it can be forgotten (so memory does not grow with every contact ever seen).
fn next_deadline(contact: &Contact, cfg: &WindowConfig) -> Option<UnixSeconds> {
    let alias_end = contact.alias.as_ref().map(|a| a.until);
    // A contact that still forwards is forgotten once its alias ends, not before; one that
    // keeps only its marketing preference has nothing left to forget.
    let forget_at = match alias_end {
        Some(_) => None,
        None if contact.marketing.is_some() && contact.windows == ContactWindows::default() => None,
        None => contact.windows.forgettable_at(cfg),
    };
    [contact.windows.next_deadline(cfg), alias_end, forget_at]
        .into_iter()
        .flatten()
        .min()
}

/// A BSUID contact that shows a phone number tells that number's key to route here, so
/// statuses naming only the phone number (failed sends carry no BSUID) reach this state.
/// Sent when the number is new and whenever a window opens, so the alias outlives the window.
fn remember_phone_number(
    contact: &mut Contact,
    key: &ContactKey,
    wa_id: Option<WaId>,
    window_opened: bool,
    now: UnixSeconds,
    routed: &mut Vec<(ContactKey, Vec<u8>)>,
) {
    let Some((pnid, CustomerId::User(_))) = key.split() else {
        return;
    };
    let Some(wa_id) = wa_id else { return };
    let changed = contact.wa_id.as_ref() != Some(&wa_id);
    if !changed && !window_opened {
        return;
    }
    let alias_key = ContactKey::from_raw(&format!("{pnid}:{}", wa_id.as_str()));
    let id = format!("{}:alias:{}:{}", alias_key.as_str(), key.as_str(), now.0);
    routed.push((
        alias_key.clone(),
        routing_record(
            &alias_key,
            TYPE_ALIAS,
            &id,
            now,
            AliasData {
                target: key.clone(),
            },
        ),
    ));
    contact.wa_id = Some(wa_id);
}

/// Window memory that can be dropped: nothing open, nothing remembered that still matters.
fn has_forgettable_windows(contact: &Contact, now: UnixSeconds, cfg: &WindowConfig) -> bool {
    contact.windows != ContactWindows::default() && contact.windows.is_forgettable(now, cfg)
}

fn forward(target: &ContactKey, event: Value, hops: u8, now: UnixSeconds, out: &mut Outbox) {
    let id_source = serde_json::to_string(&event).unwrap_or_default();
    let id = format!("{}:forwarded:{}", target.as_str(), short_hash(&id_source));
    let data = ForwardedData {
        hops: hops.saturating_add(1),
        event,
    };
    out.routed.push((
        target.clone(),
        routing_record(target, TYPE_FORWARDED, &id, now, data),
    ));
}

fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}
