//! Inbound messages and customers (spec/api.md "Inbound messages and customers").

use super::views::{CustomerView, InboundView};
use super::{Caller, Context};
use crate::audit::{Actor, AuditAction};
use crate::db::{self, write_tx, DbConn};
use crate::domain::ids::{CustomerId, InboundId};
use crate::domain::inbound::{normalize_handle, InboundState};
use crate::domain::roles::Permission;
use crate::domain::text::check_field;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};

pub const MAX_TEXT_CHARS: usize = 10_000;

/// A customer's post as a channel or integration hands it over, not yet validated.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub channel: String,
    pub external_id: String,
    pub author_handle: String,
    pub author_external_user_id: Option<String>,
    pub text: String,
    pub received_at: Option<DateTime<Utc>>,
}

/// Whether the message was new.
pub enum Received {
    Created(InboundView),
    AlreadyKnown(InboundView),
}

fn validate(m: &NewInbound) -> Result<String> {
    let channel_ok = !m.channel.is_empty()
        && m.channel.len() <= 32
        && m.channel
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !channel_ok {
        return Err(Error::BadRequest(
            "channel must be a short lower-case name such as \"x\"".into(),
        ));
    }
    let bad = Error::BadRequest;
    check_field("external_id", &m.external_id, 128, true).map_err(bad)?;
    check_field("text", &m.text, MAX_TEXT_CHARS, true).map_err(bad)?;
    normalize_handle(&m.author_handle).ok_or_else(|| {
        Error::BadRequest(format!(
            "author.handle {:?} is not a handle",
            m.author_handle
        ))
    })
}

/// Records an inbound message, linking its author to a customer by handle (a new customer
/// for a new handle). Idempotent on channel + external id: the same message again returns
/// the first record and changes nothing. Records `customer.created` and `inbound.received`.
pub fn receive(
    ctx: &Context,
    conn: &mut DbConn,
    caller: Option<&Caller>,
    m: &NewInbound,
) -> Result<Received> {
    if let Some(c) = caller {
        c.require(Permission::CreateInbound)?;
    }
    let handle = validate(m)?;
    if let Some(at) = m.received_at {
        crate::domain::inbound::check_received_at(&m.channel, at, ctx.clock.now())
            .map_err(Error::BadRequest)?;
    }
    let actor = caller.map_or(Actor::System, |c| Actor::User(c.id));
    let t0 = ctx.clock.now().naive_utc();
    write_tx(conn, |conn| {
        if let Some(existing) = db::inbound::by_external_id(conn, &m.channel, &m.external_id)? {
            return Ok(Received::AlreadyKnown(InboundView::build(existing, t0)));
        }
        let t = ctx.clock.now();
        let customer_id = match db::inbound::customer_for_handle(conn, &m.channel, &handle)? {
            Some(id) => id,
            None => {
                let id = CustomerId::new().to_string();
                db::inbound::insert_customer(conn, &id, t.naive_utc())?;
                db::inbound::insert_handle(
                    conn,
                    &m.channel,
                    &handle,
                    &id,
                    m.author_external_user_id.as_deref(),
                    t.naive_utc(),
                )?;
                db::audit::append(
                    conn,
                    t.naive_utc(),
                    &actor,
                    Some(&id),
                    &AuditAction::CustomerCreated {
                        channel: m.channel.clone(),
                        handle: handle.clone(),
                    },
                )?;
                id
            }
        };
        let received_at = m.received_at.unwrap_or(t);
        let due = ctx.settings.hours.due_at(received_at);
        let at_risk = ctx.settings.hours.at_risk_at(received_at);
        let id = InboundId::new().to_string();
        db::inbound::insert(
            conn,
            &db::inbound::NewInbound {
                id: &id,
                channel: &m.channel,
                external_id: &m.external_id,
                customer_id: &customer_id,
                author_handle: &handle,
                text: &m.text,
                received_at: received_at.naive_utc(),
                due_at: due.naive_utc(),
                at_risk_at: at_risk.naive_utc(),
                now: t.naive_utc(),
            },
        )?;
        let row = db::inbound::by_id(conn, &id)?
            .ok_or_else(|| Error::Internal("inbound row vanished".into()))?;
        let view = InboundView::build(row, t.naive_utc());
        db::audit::append(
            conn,
            t.naive_utc(),
            &actor,
            Some(&id),
            &AuditAction::InboundReceived {
                channel: view.channel.clone(),
                external_id: view.external_id.clone(),
                customer_id: view.customer_id.clone(),
                author_handle: view.author_handle.clone(),
                text: view.text.clone(),
                received_at: view.received_at.clone(),
                due_at: view.due_at.clone(),
            },
        )?;
        Ok(Received::Created(view))
    })
}

/// The queue of messages in `state`, soonest due first.
pub fn list(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    state: InboundState,
    limit: i64,
) -> Result<Vec<InboundView>> {
    caller.require(Permission::Read)?;
    let t = ctx.clock.now().naive_utc();
    Ok(db::inbound::list_by_state(conn, state.as_str(), limit)?
        .into_iter()
        .map(|r| InboundView::build(r, t))
        .collect())
}

pub fn get(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: InboundId,
) -> Result<InboundView> {
    caller.require(Permission::Read)?;
    let t = ctx.clock.now().naive_utc();
    db::inbound::by_id(conn, &id.to_string())?
        .map(|r| InboundView::build(r, t))
        .ok_or_else(|| Error::not_found("inbound message", id))
}

/// A customer, their handles and their recent messages.
pub fn customer(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: CustomerId,
) -> Result<CustomerView> {
    caller.require(Permission::Read)?;
    let key = id.to_string();
    let c = db::inbound::customer(conn, &key)?.ok_or_else(|| Error::not_found("customer", id))?;
    let handles = db::inbound::handles_of(conn, &key)?;
    let history = db::inbound::history_of(conn, &key, 100)?;
    Ok(CustomerView::build(
        c,
        handles,
        history,
        ctx.clock.now().naive_utc(),
    ))
}
