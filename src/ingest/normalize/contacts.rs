//! Whose item it is: contacts, the customer id an item names, message ids and item times.

use super::*;

// ---------------------------------------------------------------------------------------------
// Contacts and the customer of an item.

/// A `value.contacts[]` entry.
pub(super) struct Contact<'a> {
    pub(super) user_id: Option<Cow<'a, str>>,
    pub(super) wa_id: Option<Cow<'a, str>>,
    pub(super) profile_name: Option<Cow<'a, str>>,
}

impl<'a> Contact<'a> {
    pub(super) fn from_peek(peek: ContactPeek<'a>) -> Result<Self, Bad> {
        let profile_name = match peek.profile {
            Nested::Absent | Nested::Null => None,
            Nested::Obj(p) => p.name.into_string()?,
            Nested::Other => return Err(Bad),
        };
        Ok(Self {
            user_id: peek.user_id.into_string()?,
            wa_id: peek.wa_id.into_string()?,
            profile_name,
        })
    }

    pub(super) fn matches(&self, user_id: Option<&str>, wa_id: Option<&str>) -> bool {
        (user_id.is_some() && self.user_id.as_deref() == user_id)
            || (wa_id.is_some() && self.wa_id.as_deref() == wa_id)
    }
}

/// Completes the item's ids and profile name from the matching contact. Meta usually lists
/// contacts in item order, so the search starts at the item's own index: a batch of a
/// thousand stays linear.
pub(super) fn resolve<'s>(
    contacts: &'s [Contact<'_>],
    index: usize,
    user_id: Option<&'s str>,
    wa_id: Option<&'s str>,
) -> Who<'s> {
    let mut who = Who {
        user_id,
        wa_id,
        profile_name: None,
    };
    if contacts.is_empty() || (user_id.is_none() && wa_id.is_none()) {
        return who;
    }
    let start = index % contacts.len();
    let found = contacts[start..]
        .iter()
        .chain(&contacts[..start])
        .find(|c| c.matches(user_id, wa_id));
    if let Some(c) = found {
        who.user_id = who.user_id.or(c.user_id.as_deref());
        who.wa_id = who.wa_id.or(c.wa_id.as_deref());
        who.profile_name = c.profile_name.as_deref();
    }
    who
}

/// Meta gives a reaction and its removal the same wamid: the time and emoji tell them
/// apart.
pub(super) fn message_id(
    prefix: &str,
    wamid: &str,
    kind: Option<&str>,
    stamp: Option<&str>,
    emoji: Option<&str>,
) -> String {
    if kind == Some("reaction") {
        format!(
            "{prefix}:{wamid}:reaction:{}:{}",
            stamp.unwrap_or(""),
            emoji.unwrap_or("")
        )
    } else {
        format!("{prefix}:{wamid}")
    }
}

/// `reaction.emoji`, checked on every message so a wrong type is caught whatever the `type`.
pub(super) fn reaction_emoji<'s>(
    reaction: &'s Nested<ReactionPeek<'_>>,
) -> Result<Option<&'s str>, Bad> {
    match reaction {
        Nested::Absent | Nested::Null => Ok(None),
        Nested::Obj(r) => r.emoji.string(),
        Nested::Other => Err(Bad),
    }
}

pub(super) fn item_time(stamp: Option<&str>) -> Option<UnixSeconds> {
    stamp.and_then(rfc3339_instant)
}
