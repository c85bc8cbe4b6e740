//! Walking a parsed body and emitting one event per item: scopes, drafts and the event data.

use super::*;

/// Which level a pass-through carries, written as `data.part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Body,
    Entry,
    Change,
    Value,
    Item,
}

impl Part {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Entry => "entry",
            Self::Change => "change",
            Self::Value => "value",
            Self::Item => "item",
        }
    }
}

/// What the event's surroundings say: the entry's WABA, the change's field and metadata.
#[derive(Clone, Copy)]
pub(super) struct Scope<'s> {
    pub(super) waba_id: &'s str,
    pub(super) source: &'s str,
    pub(super) entry_time: Option<UnixSeconds>,
    pub(super) field: Option<&'s str>,
    pub(super) phone_number_id: Option<&'s str>,
    pub(super) display_phone_number: Option<&'s str>,
}

impl<'s> Scope<'s> {
    pub(super) fn new(waba_id: &'s str, source: &'s str, entry_time: Option<UnixSeconds>) -> Self {
        Self {
            waba_id,
            source,
            entry_time,
            field: None,
            phone_number_id: None,
            display_phone_number: None,
        }
    }

    pub(super) fn with_field(self, field: &'s str) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }
}

/// The customer an item is about.
#[derive(Clone, Copy, Default)]
pub(super) struct Who<'s> {
    pub(super) user_id: Option<&'s str>,
    pub(super) wa_id: Option<&'s str>,
    pub(super) profile_name: Option<&'s str>,
}

/// One event about to be written.
pub(super) struct Draft<'s> {
    pub(super) event_type: InboundType,
    /// `None`: derive it from a hash of what is passed through.
    pub(super) id: Option<String>,
    pub(super) who: Who<'s>,
    pub(super) time: Option<UnixSeconds>,
    /// Name of the `data` member carrying `item`.
    pub(super) item_key: &'static str,
    pub(super) part: Option<Part>,
    pub(super) item: &'s RawValue,
}

/// What kind of item a modeled array holds.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Message,
    Status,
    Call,
    UserIdUpdate,
    Echo,
    Preference,
}

/// The item arrays of each modeled field, by the key they have in `value`.
pub(super) fn modeled_arrays(field: &str) -> Option<&'static [(&'static str, Kind)]> {
    Some(match field {
        "messages" => &[("messages", Kind::Message), ("statuses", Kind::Status)],
        "calls" => &[("calls", Kind::Call)],
        "user_id_update" => &[("user_id_update", Kind::UserIdUpdate)],
        "smb_message_echoes" => &[("message_echoes", Kind::Echo)],
        // Opt-outs are about one customer: keyed to that contact, item by item.
        "user_preferences" => &[("user_preferences", Kind::Preference)],
        _ => return None,
    })
}

/// Most item arrays a modeled field has (`messages` has two).
pub(super) const MAX_ARRAYS: usize = 2;

pub(super) struct Emitter<'t> {
    /// The whole body, to find a level again when it has to be passed on whole.
    pub(super) text: &'t str,
    pub(super) events: Vec<InboundEvent>,
    pub(super) error: Option<serde_json::Error>,
}

impl<'t> Emitter<'t> {
    pub(super) fn pass_body(&mut self) {
        // `text` was just read as JSON, so this does not fail.
        if let Ok(whole) = serde_json::from_str::<&RawValue>(self.text) {
            let source = waba_source("");
            self.pass_through(&Scope::new("", &source, None), Part::Body, whole);
        }
    }

    /// Passes `entry[index]`, or `entry[index].changes[change]`, on whole. The first pass kept
    /// no raw text for these levels (it would have meant reading them twice); they are found
    /// again here, which only malformed bodies pay for.
    pub(super) fn pass_level(&mut self, scope: &Scope<'_>, index: usize, change: Option<usize>) {
        let text = self.text;
        let found = locate_entry(text, index).and_then(|entry| match change {
            None => Some(entry),
            Some(j) => locate_change(entry, j),
        });
        match found {
            Some(raw) => {
                let part = if change.is_some() {
                    Part::Change
                } else {
                    Part::Entry
                };
                self.pass_through(scope, part, raw);
            }
            // Not reachable for text the first pass read; if it were, the body goes whole.
            None => self.pass_body(),
        }
    }

    pub(super) fn entry(&mut self, index: usize, entry: Element<EntryParts<'t>>) {
        let Element::Object(entry) = entry else {
            let source = waba_source("");
            self.pass_level(&Scope::new("", &source, None), index, None);
            return;
        };
        let mut stray = entry.stray;
        let waba_id = match entry.id.map(parse_text) {
            Some(Ok(Text::Str(s))) => s,
            None => Cow::Borrowed(""),
            Some(_) => {
                stray = true;
                Cow::Borrowed("")
            }
        };
        let entry_time = match entry.time.map(parse_text) {
            Some(Ok(t)) => match t.stamp() {
                Ok(stamp) => stamp.and_then(rfc3339_instant),
                Err(Bad) => {
                    stray = true;
                    None
                }
            },
            Some(Err(_)) => {
                stray = true;
                None
            }
            None => None,
        };
        // An entry without `changes` is passed on whole too: nothing Meta sends is lost.
        stray |= entry.changes.is_none();
        let source = waba_source(&waba_id);
        let scope = Scope::new(&waba_id, &source, entry_time);
        if stray {
            self.pass_level(&scope, index, None);
        }
        for (j, change) in entry.changes.into_iter().flatten().enumerate() {
            self.change(scope, index, j, change);
        }
    }

    pub(super) fn change(
        &mut self,
        scope: Scope<'_>,
        index: usize,
        j: usize,
        change: Element<ChangeParts<'t>>,
    ) {
        let Element::Object(change) = change else {
            self.pass_level(&scope, index, Some(j));
            return;
        };
        let field = match change.field.map(parse_text) {
            Some(Ok(Text::Str(s))) => s,
            // Without a field name nothing inside can be modeled: the change goes on whole.
            _ => {
                self.pass_level(&scope, index, Some(j));
                return;
            }
        };
        let scope = scope.with_field(&field);
        let Some(value) = change.value else {
            self.pass_level(&scope, index, Some(j));
            return;
        };
        if change.stray {
            self.pass_level(&scope, index, Some(j));
        }
        match modeled_arrays(&field) {
            Some(arrays) => self.modeled_value(scope, arrays, value),
            None => self.unmodeled_value(scope, value),
        }
    }

    /// A field this service does not model: one event with the whole value.
    pub(super) fn unmodeled_value(&mut self, scope: Scope<'_>, value: &RawValue) {
        // Only to fill `phone_number_id` in `data` when the value happens to name one.
        let mut metadata = None;
        let _ = for_each_member(value.get(), false, |key, member| {
            if &*key == "metadata" && metadata.is_none() {
                metadata = Some(member);
            }
        });
        let metadata = metadata.and_then(parse_object::<MetadataPeek<'_>>);
        // A fresh binding: the scope now also borrows from this value.
        let mut scope = Scope { ..scope };
        if let Some(m) = &metadata {
            scope.phone_number_id = m.phone_number_id.string().ok().flatten();
            scope.display_phone_number = m.display_phone_number.string().ok().flatten();
        }
        self.pass_through(&scope, Part::Value, value);
    }

    pub(super) fn modeled_value(
        &mut self,
        scope: Scope<'_>,
        arrays: &[(&'static str, Kind)],
        value: &RawValue,
    ) {
        let mut de = serde_json::Deserializer::from_str(value.get());
        let Ok(parts) = (ValueSeed { arrays }).deserialize(&mut de) else {
            self.pass_through(&scope, Part::Value, value);
            return;
        };
        let ValueParts {
            metadata,
            contacts,
            lists,
            mut stray,
        } = parts;

        let metadata = match metadata.map(parse_object::<MetadataPeek<'_>>) {
            Some(Some(m)) => Some(m),
            Some(None) => {
                stray = true;
                None
            }
            None => None,
        };
        let mut scope = Scope { ..scope };
        if let Some(m) = &metadata {
            match (m.phone_number_id.string(), m.display_phone_number.string()) {
                (Ok(pnid), Ok(display)) => {
                    scope.phone_number_id = pnid;
                    scope.display_phone_number = display;
                }
                _ => stray = true,
            }
        }

        let mut known = Vec::new();
        if let Some(raw) = contacts {
            match elements(raw) {
                Some(list) => {
                    known.reserve(list.len());
                    for c in list {
                        match parse_object::<ContactPeek<'_>>(c)
                            .ok_or(Bad)
                            .and_then(Contact::from_peek)
                        {
                            Ok(contact) => known.push(contact),
                            Err(Bad) => stray = true,
                        }
                    }
                }
                None => stray = true,
            }
        }

        for (list, (_, kind)) in lists.into_iter().zip(arrays) {
            let Some(list) = list else { continue };
            let Some(items) = list else {
                stray = true;
                continue;
            };
            for (index, item) in items.into_iter().enumerate() {
                self.item(&scope, &known, *kind, index, item);
            }
        }

        if stray {
            self.pass_through(&scope, Part::Value, value);
        }
    }

    pub(super) fn item(
        &mut self,
        scope: &Scope<'_>,
        contacts: &[Contact<'_>],
        kind: Kind,
        index: usize,
        raw: &RawValue,
    ) {
        let cx = ItemCx {
            scope,
            contacts,
            index,
        };
        match kind {
            Kind::Message => self.peeked::<MessagePeek<'_>>(cx, raw),
            Kind::Status => self.peeked::<StatusPeek<'_>>(cx, raw),
            Kind::Call => self.peeked::<CallPeek<'_>>(cx, raw),
            Kind::UserIdUpdate => self.peeked::<UserIdUpdatePeek<'_>>(cx, raw),
            Kind::Echo => self.peeked::<EchoPeek<'_>>(cx, raw),
            Kind::Preference => self.peeked::<PreferencePeek<'_>>(cx, raw),
        }
    }

    /// Reads the fields `P` needs from an item and emits its event, or passes the item on
    /// when it is not an object or a field has the wrong type.
    pub(super) fn peeked<'r, P: Peek<'r>>(&mut self, cx: ItemCx<'_, '_>, raw: &'r RawValue) {
        let peek = parse_object::<P>(raw);
        match peek.as_ref().ok_or(Bad).and_then(|p| p.draft(&cx, raw)) {
            Ok(draft) => self.emit(cx.scope, draft),
            Err(Bad) => self.pass_through(cx.scope, Part::Item, raw),
        }
    }

    /// A `whatsapp.change.other` carrying `raw` whole under `data.value`.
    pub(super) fn pass_through(&mut self, scope: &Scope<'_>, part: Part, raw: &RawValue) {
        self.emit(
            scope,
            Draft {
                event_type: InboundType::ChangeOther,
                id: None,
                who: Who::default(),
                time: scope.entry_time,
                item_key: "value",
                part: Some(part),
                item: raw,
            },
        );
    }

    pub(super) fn emit(&mut self, scope: &Scope<'_>, draft: Draft<'_>) {
        let key = match (
            scope.phone_number_id,
            CustomerId::pick(
                draft.who.user_id.map(UserId::new),
                draft.who.wa_id.map(WaId::new),
            ),
        ) {
            (Some(pnid), Some(customer)) => ContactKey::new(&PhoneNumberId::new(pnid), &customer),
            _ => ContactKey::for_account(scope.waba_id),
        };
        let id = match draft.id {
            Some(id) => id,
            None => hashed_id(scope, draft.part, draft.item_key, draft.item),
        };
        let data = InboundData {
            scope,
            who: draft.who,
            part: draft.part,
            item_key: draft.item_key,
            item: draft.item,
        };
        let event = CloudEvent::new(
            id.as_str(),
            scope.source,
            draft.event_type.as_str(),
            key.as_str(),
            draft.time,
            data,
        );
        // Envelope and data keys take a few hundred bytes beyond the item itself.
        let mut payload = Vec::with_capacity(draft.item.get().len() + 512);
        if let Err(e) = event.write_to(&mut payload) {
            self.error.get_or_insert(e);
            return;
        }
        repair_lone_surrogates(&mut payload);
        self.events.push(InboundEvent {
            key,
            event_type: draft.event_type,
            id,
            payload,
        });
    }
}

/// `data` of every inbound event.
pub(super) struct InboundData<'s> {
    pub(super) scope: &'s Scope<'s>,
    pub(super) who: Who<'s>,
    pub(super) part: Option<Part>,
    pub(super) item_key: &'static str,
    pub(super) item: &'s RawValue,
}

impl Serialize for InboundData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("data", 8 + usize::from(self.part.is_some()))?;
        st.serialize_field("waba_id", self.scope.waba_id)?;
        st.serialize_field("phone_number_id", &self.scope.phone_number_id)?;
        st.serialize_field("display_phone_number", &self.scope.display_phone_number)?;
        st.serialize_field("wa_id", &self.who.wa_id)?;
        st.serialize_field("user_id", &self.who.user_id)?;
        st.serialize_field("profile_name", &self.who.profile_name)?;
        st.serialize_field("field", &self.scope.field)?;
        if let Some(part) = self.part {
            st.serialize_field("part", part.as_str())?;
        }
        st.serialize_field(self.item_key, self.item)?;
        st.end()
    }
}
