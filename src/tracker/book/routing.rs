//! Routing between keys: a BSUID change moves the state to the new key, a phone number's key
//! learns its BSUID's key and forwards to it, and a forwarded record is passed on untouched.
//! Every hop goes through the inbound topic, since the other key may live on another partition.

use super::*;

impl Book {
    /// The customer's BSUID changed: the state moves to the new key through the inbound topic,
    /// and this key keeps a stub that forwards stragglers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn user_id_changed(
        &mut self,
        partition: i32,
        key: &ContactKey,
        to: ContactKey,
        wa_id: Option<WaId>,
        at: Option<UnixSeconds>,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
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
        let partition_map = self.partitions.entry(partition).or_default();
        let previous = partition_map.take_or_new(key).contact;
        let moved = MovedState {
            from: key.clone(),
            windows: previous.windows,
            wa_id: wa_id.or(previous.wa_id),
            changed_at: at,
            marketing: previous.marketing.map(|m| *m),
        };
        let id = format!("{}:moved:{}", key.as_str(), to.as_str());
        send_moved(&to, &id, &moved, now, out);
        // Stragglers still addressed to the old id (reordered messages, statuses) follow.
        self.leave_forwarding_stub(partition, key, to, at, now, out);
    }

    /// State of the same customer under an old key arrives: merged here, or sent on when this
    /// key itself moved on since.
    pub(super) fn moved_here(
        &mut self,
        partition: i32,
        key: &ContactKey,
        moved: MovedState,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
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
            send_moved(&target, &id, &moved, now, out);
            return;
        }
        let cfg = Arc::clone(&self.cfg);
        self.change(partition, key, now, out, |contact, events, routed| {
            contact.alias = None;
            contact.windows.absorb(moved.windows, now, &cfg, events);
            if let Some(theirs) = moved.marketing {
                contact.apply_marketing(theirs);
            }
            contact.windows.tick(now, &cfg, events);
            remember_phone_number(contact, key, moved.wa_id, true, now, routed);
        });
    }

    /// This phone number's key learns its BSUID's key: what it kept moves there, and inputs
    /// that name only the phone number are forwarded from now on.
    pub(super) fn alias_to(
        &mut self,
        partition: i32,
        key: &ContactKey,
        target: ContactKey,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        if &target == key {
            return;
        }
        let partition_map = self.partitions.entry(partition).or_default();
        let previous = partition_map.take_or_new(key).contact;
        // Windows kept under the phone number before a BSUID was known join the BSUID's.
        if !previous.windows.is_forgettable(now, &self.cfg) || previous.marketing.is_some() {
            let moved = MovedState {
                from: key.clone(),
                windows: previous.windows,
                wa_id: None,
                changed_at: None,
                marketing: previous.marketing.map(|m| *m),
            };
            let id = format!("{}:moved:{}", key.as_str(), target.as_str());
            send_moved(&target, &id, &moved, now, out);
        }
        self.leave_forwarding_stub(partition, key, target, None, now, out);
    }

    /// Keeps only an alias under `key`: inputs for it go to `target` for one CSW plus one FEP
    /// length, as long as anything addressed to the old key could still matter.
    fn leave_forwarding_stub(
        &mut self,
        partition: i32,
        key: &ContactKey,
        target: ContactKey,
        changed_at: Option<UnixSeconds>,
        now: UnixSeconds,
        out: &mut Outbox,
    ) {
        let until = now.plus(self.cfg.service_window_secs + self.cfg.free_entry_window_secs);
        let stub = Contact {
            alias: Some(Box::new(Alias {
                target,
                until,
                changed_at,
            })),
            ..Contact::default()
        };
        self.store(partition, key, Stored::new(key, stub), now, out);
    }
}

/// Routes a contact's state to `target`'s key through the inbound topic.
fn send_moved(
    target: &ContactKey,
    id: &str,
    moved: &MovedState,
    now: UnixSeconds,
    out: &mut Outbox,
) {
    out.routed.push((
        target.clone(),
        routing_record(target, TYPE_MOVED, id, now, moved),
    ));
}

/// A BSUID contact that shows a phone number tells that number's key to route here, so
/// statuses naming only the phone number (failed sends carry no BSUID) reach this state.
/// Sent when the number is new and whenever a window opens, so the alias outlives the window.
pub(super) fn remember_phone_number(
    contact: &mut Contact,
    key: &ContactKey,
    wa_id: Option<WaId>,
    window_opened: bool,
    now: UnixSeconds,
    routed: &mut Vec<(ContactKey, Vec<u8>)>,
) {
    let Some(wa_id) = wa_id else { return };
    let Some(alias_key) = key.phone_alias(&wa_id) else {
        return;
    };
    let changed = contact.wa_id.as_ref() != Some(&wa_id);
    if !changed && !window_opened {
        return;
    }
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

pub(super) fn forward(
    target: &ContactKey,
    event: &[u8],
    hops: u8,
    now: UnixSeconds,
    out: &mut Outbox,
) {
    // Decoded before it came here, so it is JSON.
    let Ok(event) = serde_json::from_slice::<&serde_json::value::RawValue>(event) else {
        return;
    };
    let id = format!("{}:forwarded:{}", target.as_str(), short_hash(event.get()));
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
