//! Inbound messages and customers (spec/api.md "Inbound messages and customers").

use super::views::{DraftSummary, InboundDetail, InboundView};
use super::{Caller, Context};
use crate::audit::{Actor, AuditAction};
use crate::db::{self, write_tx, write_tx_concurrent, DbConn};
use crate::domain::ids::{CustomerId, InboundId};
use crate::domain::inbound::{Channel, InboundState};
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
    /// Who may see the post on its network (Mastodon's `visibility`), which the reply
    /// keeps; `None` when the network has no such notion or it is public.
    pub visibility: Option<String>,
}

/// Whether the message was new.
pub enum Received {
    Created(InboundView),
    AlreadyKnown(InboundView),
}

/// The message's channel and its author's handle in canonical form, or 400.
fn validate(m: &NewInbound) -> Result<(Channel, String)> {
    let channel: Channel = m.channel.parse().map_err(Error::BadRequest)?;
    let bad = Error::BadRequest;
    check_field("external_id", &m.external_id, 128, true).map_err(bad)?;
    check_field("text", &m.text, MAX_TEXT_CHARS, true).map_err(bad)?;
    if let Some(ext) = &m.author_external_user_id {
        check_field("author.external_user_id", ext, 128, true).map_err(bad)?;
    }
    let handle = channel.normalize_handle(&m.author_handle).ok_or_else(|| {
        Error::BadRequest(format!(
            "author.handle {:?}: {}",
            m.author_handle.chars().take(64).collect::<String>(),
            channel.handle_syntax()
        ))
    })?;
    Ok((channel, handle))
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
    let (channel, handle) = validate(m)?;
    if let Some(at) = m.received_at {
        crate::domain::inbound::check_received_at(channel.as_str(), at, ctx.clock.now())
            .map_err(Error::BadRequest)?;
    }
    let actor = caller.map_or(Actor::System, |c| Actor::User(c.id));
    let t0 = ctx.clock.now().naive_utc();
    write_tx_concurrent(conn, |conn| {
        // Beside other writes (PostgreSQL): the same post, or two posts of one new author,
        // arriving at once must not both create their rows.
        let sep = '\u{1f}';
        db::lock_key(
            conn,
            &format!("inbound{sep}{channel}{sep}{}", m.external_id),
        )?;
        db::lock_key(
            conn,
            &format!("handle{sep}{channel}{sep}{}", handle.to_lowercase()),
        )?;
        if let Some(ext) = &m.author_external_user_id {
            db::lock_key(conn, &format!("user{sep}{channel}{sep}{ext}"))?;
        }
        if let Some(existing) = db::inbound::by_external_id(conn, channel.as_str(), &m.external_id)?
        {
            return Ok(Received::AlreadyKnown(InboundView::build(existing, t0)));
        }
        let t = ctx.clock.now();
        let customer = customer_for(ctx, conn, &actor, channel, &handle, m)?;
        let received_at = m.received_at.unwrap_or(t);
        let due = ctx.settings.hours.due_at(received_at);
        let at_risk = ctx.settings.hours.at_risk_at(received_at);
        let id = InboundId::new();
        db::inbound::insert(
            conn,
            &db::inbound::NewInbound {
                id,
                channel: channel.as_str(),
                external_id: &m.external_id,
                customer_id: customer,
                author_handle: &handle,
                text: &m.text,
                received_at: received_at.naive_utc(),
                due_at: due.naive_utc(),
                at_risk_at: at_risk.naive_utc(),
                visibility: m.visibility.as_deref(),
                now: t.naive_utc(),
            },
        )?;
        let row = db::inbound::by_id(conn, id)?
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
                customer_id: view.customer_id,
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
    Ok(db::inbound::list_by_state(conn, state, limit)?
        .into_iter()
        .map(|r| InboundView::build(r, t))
        .collect())
}

/// The message and its drafts, oldest first. Errors: 404 unknown id.
pub fn get(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: InboundId,
) -> Result<InboundDetail> {
    caller.require(Permission::Read)?;
    let t = ctx.clock.now().naive_utc();
    let message = db::inbound::by_id(conn, id)?
        .map(|r| InboundView::build(r, t))
        .ok_or_else(|| Error::not_found("inbound message", id))?;
    let drafts = db::drafts::for_inbounds(conn, &[id])?
        .into_iter()
        .map(DraftSummary::build)
        .collect::<Result<_>>()?;
    Ok(InboundDetail { message, drafts })
}

/// The customer a message's author is: the owner of the handle on the channel, else the
/// owner of the channel's user id (the author renamed their handle: the new handle is
/// linked, `customer.linked`), else a new customer (`customer.created`).
fn customer_for(
    ctx: &Context,
    conn: &mut DbConn,
    actor: &Actor,
    channel: Channel,
    handle: &str,
    m: &NewInbound,
) -> Result<CustomerId> {
    if let Some(owner) = db::customers::owner_of_handle(conn, channel.as_str(), handle)? {
        return Ok(owner);
    }
    let t = ctx.clock.now().naive_utc();
    let known = match &m.author_external_user_id {
        Some(ext) => db::customers::owner_of_external_user(conn, channel.as_str(), ext)?,
        None => None,
    };
    let (id, action) = match known {
        Some(owner) => (
            owner,
            AuditAction::CustomerLinked {
                channel: channel.as_str().into(),
                handle: handle.to_string(),
                external_user_id: m.author_external_user_id.clone(),
            },
        ),
        None => {
            let id = CustomerId::new();
            db::customers::insert(conn, id, t)?;
            (
                id,
                AuditAction::CustomerCreated {
                    channel: channel.as_str().into(),
                    handle: handle.to_string(),
                },
            )
        }
    };
    db::customers::insert_handle(
        conn,
        channel.as_str(),
        handle,
        id,
        m.author_external_user_id.as_deref(),
        t,
    )?;
    db::audit::append(conn, t, actor, Some(&id), &action)?;
    Ok(id)
}

/// Closes an open message without a reply, with a reason: it leaves the queue, and its
/// drafts not yet approved are superseded. Records `inbound.closed` (and
/// `draft.superseded` for each). Errors: 400 an empty reason, 403 without the agent or
/// admin role, 404 unknown message, 409 not open.
pub fn close(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: InboundId,
    reason: &str,
) -> Result<InboundView> {
    caller.require(Permission::ManageCustomers)?;
    let reason = reason.trim();
    check_field("reason", reason, 1000, true).map_err(Error::BadRequest)?;
    write_tx(conn, |conn| {
        let m =
            db::inbound::by_id(conn, id)?.ok_or_else(|| Error::not_found("inbound message", id))?;
        let t = ctx.clock.now().naive_utc();
        if !db::inbound::close(conn, id, reason, t)? {
            return Err(Error::Conflict(format!(
                "the inbound message is {}; only an open message can be closed",
                m.state
            )));
        }
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&id),
            &AuditAction::InboundClosed {
                reason: reason.to_string(),
            },
        )?;
        super::drafts::supersede_others(
            conn,
            id,
            None,
            crate::audit::action::SupersededBecause::Closed,
            &Actor::User(caller.id),
            t,
        )?;
        let row = db::inbound::by_id(conn, id)?
            .ok_or_else(|| Error::Internal("inbound row vanished".into()))?;
        Ok(InboundView::build(row, t))
    })
}
