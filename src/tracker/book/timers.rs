//! Timers: each partition's deadlines in a lazily invalidated heap, fired by that partition's
//! clock; a contact's next deadline is a warning, a close, its alias's end, or the moment it
//! can be forgotten.

use super::*;

impl Book {
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
            let Some(Reverse((at, hash))) = slot.timers.pop() else {
                return;
            };
            let mut due = Vec::new();
            for stored in slot.contacts.with_hash_mut(hash) {
                let contact = &mut stored.contact;
                // A stale entry, or another key with the same hash: this contact was armed
                // for another instant.
                if contact.armed.get() != Some(at) {
                    continue;
                }
                contact.armed = Armed::NONE;
                // Its deadline moved later (an extension): wait for that instead.
                if next_deadline(contact, &self.cfg).is_some_and(|next| next > now) {
                    arm(&mut slot.timers, &self.cfg, hash, contact);
                    continue;
                }
                due.push(ContactKey::from_raw(stored.key()));
            }
            let cfg = Arc::clone(&self.cfg);
            for key in due {
                self.change(partition, &key, now, out, |contact, events, _| {
                    contact.windows.tick(now, &cfg, events);
                    if contact.alias.as_ref().is_some_and(|a| a.until <= now) {
                        contact.alias = None;
                    }
                });
            }
        }
    }
}

/// Gives a contact a timer entry for its next deadline, unless it already has one that fires
/// no later: an extension then costs no new entry, and the old one re-arms when it fires.
pub(super) fn arm(timers: &mut Timers, cfg: &WindowConfig, hash: u64, contact: &mut Contact) {
    let Some(at) = next_deadline(contact, cfg) else {
        return;
    };
    if contact.armed.get().is_some_and(|armed| armed <= at) {
        return;
    }
    contact.armed = Armed::at(at);
    timers.push(Reverse((at, hash)));
}

/// The next instant this contact needs attention: a warning or close, the end of its alias,
/// or the moment it can be forgotten (so memory does not grow with every contact ever seen).
pub(super) fn next_deadline(contact: &Contact, cfg: &WindowConfig) -> Option<UnixSeconds> {
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
