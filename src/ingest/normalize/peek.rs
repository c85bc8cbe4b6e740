//! The few fields of each item that decide its key, id and time, read without a Value tree.

use super::*;

// ---------------------------------------------------------------------------------------------
// What is read from each item. Every field is lenient (`Text`), and a field of the wrong type
// turns the item into a pass-through (`Bad`) instead of an error.

/// What an item's event is made from besides the item itself.
#[derive(Clone, Copy)]
pub(super) struct ItemCx<'c, 's> {
    pub(super) scope: &'c Scope<'s>,
    pub(super) contacts: &'c [Contact<'c>],
    /// The item's position in its array: where its contact most likely is.
    pub(super) index: usize,
}

/// The fields of one kind of item that decide its event.
pub(super) trait Peek<'a>: Deserialize<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad>;
}

/// A field the normalizer reads had a type it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bad;

/// A message, as the customer sent it (`messages[]`) or as the business sent it from the app
/// (`smb_message_echoes`): the same fields, with the customer on the other side.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ChatPeek<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
    #[serde(borrow, rename = "type")]
    pub(super) kind: Text<'a>,
    #[serde(borrow)]
    pub(super) from: Text<'a>,
    #[serde(borrow)]
    pub(super) from_user_id: Text<'a>,
    #[serde(borrow)]
    pub(super) to: Text<'a>,
    #[serde(borrow)]
    pub(super) to_user_id: Text<'a>,
    #[serde(borrow)]
    pub(super) reaction: Nested<ReactionPeek<'a>>,
}

/// How one kind of chat item becomes an event.
pub(super) struct ChatRole {
    /// First part of the id: `message` or `echo`.
    id_prefix: &'static str,
    event_type: InboundType,
    item_key: &'static str,
    /// The customer wrote it (else the business did, and the customer is the recipient).
    from_customer: bool,
}

impl<'a> ChatPeek<'a> {
    fn chat_draft<'s>(
        &'s self,
        role: &ChatRole,
        cx: &ItemCx<'s, '_>,
        raw: &'s RawValue,
    ) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let kind = self.kind.string()?;
        let emoji = reaction_emoji(&self.reaction)?;
        let id = self
            .id
            .string()?
            .map(|wamid| message_id(role.id_prefix, wamid, kind, stamp, emoji));
        let (user_id, wa_id) = if role.from_customer {
            (&self.from_user_id, &self.from)
        } else {
            (&self.to_user_id, &self.to)
        };
        Ok(Draft {
            event_type: role.event_type,
            id,
            who: resolve(cx.contacts, cx.index, user_id.string()?, wa_id.string()?),
            time: item_time(stamp),
            item_key: role.item_key,
            part: None,
            item: raw,
        })
    }
}

/// A customer's message.
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub(super) struct MessagePeek<'a>(#[serde(borrow)] ChatPeek<'a>);

impl<'a> Peek<'a> for MessagePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        const ROLE: ChatRole = ChatRole {
            id_prefix: "message",
            event_type: InboundType::MessageReceived,
            item_key: "message",
            from_customer: true,
        };
        self.0.chat_draft(&ROLE, cx, raw)
    }
}

/// A message the business sent from the WhatsApp Business app: passed through, keyed by its
/// recipient.
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub(super) struct EchoPeek<'a>(#[serde(borrow)] ChatPeek<'a>);

impl<'a> Peek<'a> for EchoPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        const ROLE: ChatRole = ChatRole {
            id_prefix: "echo",
            event_type: InboundType::ChangeOther,
            item_key: "message_echo",
            from_customer: false,
        };
        self.0.chat_draft(&ROLE, cx, raw)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ReactionPeek<'a> {
    #[serde(borrow)]
    pub(super) emoji: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct StatusPeek<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) status: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
    #[serde(borrow)]
    pub(super) recipient_id: Text<'a>,
    #[serde(borrow)]
    pub(super) recipient_user_id: Text<'a>,
    /// Group messages: one status per participant for the same wamid and status.
    #[serde(borrow)]
    pub(super) recipient_participant_id: Text<'a>,
}

impl<'a> Peek<'a> for StatusPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let participant = self.recipient_participant_id.string()?;
        let id = match (self.id.string()?, self.status.string()?) {
            (Some(wamid), Some(status)) => Some(match participant {
                Some(p) => format!("status:{wamid}:{status}:{p}"),
                None => format!("status:{wamid}:{status}"),
            }),
            _ => None,
        };
        Ok(Draft {
            event_type: InboundType::StatusUpdated,
            id,
            who: resolve(
                cx.contacts,
                cx.index,
                self.recipient_user_id.string()?,
                self.recipient_id.string()?,
            ),
            time: item_time(stamp),
            item_key: "status",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CallPeek<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) event: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
    #[serde(borrow)]
    pub(super) direction: Text<'a>,
    #[serde(borrow)]
    pub(super) from: Text<'a>,
    #[serde(borrow)]
    pub(super) to: Text<'a>,
    #[serde(borrow)]
    pub(super) from_user_id: Text<'a>,
    #[serde(borrow)]
    pub(super) to_user_id: Text<'a>,
}

impl<'a> Peek<'a> for CallPeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let from = self.from.string()?;
        let to = self.to.string()?;
        // The customer is the caller unless the business placed the call. Without a
        // direction, a call from the business's own number is business-initiated.
        let business_initiated = !crate::domain::customer_placed_call(
            self.direction.string()?,
            from,
            cx.scope.display_phone_number,
        );
        let (from_user_id, to_user_id) = (self.from_user_id.string()?, self.to_user_id.string()?);
        let (user_id, wa_id) = if business_initiated {
            (to_user_id, to)
        } else {
            (from_user_id, from)
        };
        let id = match (self.id.string()?, self.event.string()?) {
            (Some(call), Some(event)) => Some(format!("call:{call}:{event}")),
            _ => None,
        };
        Ok(Draft {
            event_type: InboundType::CallReceived,
            id,
            who: resolve(cx.contacts, cx.index, user_id, wa_id),
            time: item_time(stamp),
            item_key: "call",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UserIdUpdatePeek<'a> {
    #[serde(borrow)]
    pub(super) wa_id: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
    #[serde(borrow)]
    pub(super) user_id: Nested<UserIdPair<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UserIdPair<'a> {
    #[serde(borrow)]
    pub(super) previous: Text<'a>,
    #[serde(borrow)]
    pub(super) current: Text<'a>,
}

impl<'a> Peek<'a> for UserIdUpdatePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        let (previous, current) = match &self.user_id {
            Nested::Absent | Nested::Null => (None, None),
            Nested::Obj(pair) => (pair.previous.string()?, pair.current.string()?),
            Nested::Other => return Err(Bad),
        };
        let id = match (cx.scope.phone_number_id, previous, current) {
            (Some(pnid), Some(previous), Some(current)) => {
                Some(format!("user_id_update:{pnid}:{previous}:{current}"))
            }
            _ => None,
        };
        // Keyed by the previous id: that is where the contact's state lives until the move.
        let mut who = resolve(cx.contacts, cx.index, previous, self.wa_id.string()?);
        if previous.is_none() {
            // A contact matched on wa_id must not lend its (probably new) user id to the key.
            who.user_id = None;
        }
        Ok(Draft {
            event_type: InboundType::ContactUserIdChanged,
            id,
            who,
            time: item_time(stamp),
            item_key: "user_id_update",
            part: None,
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PreferencePeek<'a> {
    #[serde(borrow)]
    pub(super) wa_id: Text<'a>,
    #[serde(borrow)]
    pub(super) user_id: Text<'a>,
    #[serde(borrow)]
    pub(super) timestamp: Text<'a>,
}

impl<'a> Peek<'a> for PreferencePeek<'a> {
    fn draft<'s>(&'s self, cx: &ItemCx<'s, '_>, raw: &'s RawValue) -> Result<Draft<'s>, Bad> {
        let stamp = self.timestamp.stamp()?;
        Ok(Draft {
            event_type: InboundType::ChangeOther,
            id: None,
            who: resolve(
                cx.contacts,
                cx.index,
                self.user_id.string()?,
                self.wa_id.string()?,
            ),
            time: item_time(stamp),
            item_key: "value",
            part: Some(Part::Item),
            item: raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ContactPeek<'a> {
    #[serde(borrow)]
    pub(super) wa_id: Text<'a>,
    #[serde(borrow)]
    pub(super) user_id: Text<'a>,
    #[serde(borrow)]
    pub(super) profile: Nested<ProfilePeek<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ProfilePeek<'a> {
    #[serde(borrow)]
    pub(super) name: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MetadataPeek<'a> {
    #[serde(borrow)]
    pub(super) phone_number_id: Text<'a>,
    #[serde(borrow)]
    pub(super) display_phone_number: Text<'a>,
}
