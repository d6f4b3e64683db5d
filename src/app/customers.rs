//! Customer records (spec/api.md "Inbound messages and customers"): finding one by handle
//! or CRM reference, the whole history in order, linking a handle, setting the CRM
//! reference, and merging two records. Agents and admins change customers; everyone who
//! reads the queue reads them.

use super::views::{rfc3339, CustomerView, HandleView, HistoryItem, HistoryKind};
use super::{Caller, Context};
use crate::audit::{Actor, AuditAction};
use crate::db::customers::CustomerRow;
use crate::db::{self, write_tx, DbConn};
use crate::domain::ids::{CustomerId, DraftId, InboundId};
use crate::domain::inbound::{search_form, Channel};
use crate::domain::roles::Permission;
use crate::domain::text::check_field;
use crate::error::{Error, Result};

/// At most this many merges are followed from a merged-away id (a longer chain means the
/// table was edited by hand: fail rather than loop).
const MAX_MERGE_CHAIN: usize = 64;

/// One page of a history: start after `after` (a `next` cursor), at most `limit` items.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: i64,
}

fn load(conn: &mut DbConn, id: CustomerId) -> Result<CustomerRow> {
    db::customers::by_id(conn, id)?.ok_or_else(|| Error::not_found("customer", id))
}

/// The record `id` ends at after following merges.
fn survivor(conn: &mut DbConn, id: CustomerId) -> Result<CustomerRow> {
    let mut c = load(conn, id)?;
    for _ in 0..MAX_MERGE_CHAIN {
        match c.merged_into {
            None => return Ok(c),
            Some(next) => c = load(conn, next)?,
        }
    }
    Err(Error::Internal(format!(
        "customer {id}: the merge chain does not end"
    )))
}

/// 409 for a record that was merged away: it takes no writes.
fn live(conn: &mut DbConn, id: CustomerId) -> Result<CustomerRow> {
    let c = load(conn, id)?;
    if let Some(into) = c.merged_into {
        return Err(Error::Conflict(format!(
            "customer {id} was merged into {into}; change that record instead"
        )));
    }
    Ok(c)
}

/// The whole history of a customer, oldest first: every inbound message, draft, review
/// and posted reply, ordered by time (then kind, then id).
fn history(conn: &mut DbConn, id: CustomerId) -> Result<Vec<HistoryItem>> {
    let messages = db::inbound::of_customer(conn, id)?;
    let inbound_ids: Vec<InboundId> = messages.iter().map(|m| m.id).collect();
    let drafts = db::drafts::for_inbounds(conn, &inbound_ids)?;
    let draft_ids: Vec<DraftId> = drafts.iter().map(|d| d.id).collect();
    let reviews = db::drafts::reviews_of_drafts(conn, &draft_ids)?;
    let mut items = Vec::with_capacity(messages.len() + drafts.len() * 2 + reviews.len());
    for m in messages {
        items.push(HistoryItem {
            kind: HistoryKind::Inbound,
            at: rfc3339(m.received_at),
            id: m.id.0,
            channel: Some(m.channel),
            text: Some(m.text),
            state: Some(m.state.as_str().into()),
            ..Default::default()
        });
    }
    for d in drafts {
        if let Some(posted_at) = d.posted_at {
            items.push(HistoryItem {
                kind: HistoryKind::Post,
                id: d.id.0,
                at: rfc3339(posted_at),
                inbound_id: Some(d.inbound_id),
                revision: Some(d.revision),
                post_id: d.post_id.clone(),
                ..Default::default()
            });
        }
        items.push(HistoryItem {
            kind: HistoryKind::Draft,
            at: rfc3339(d.created_at),
            id: d.id.0,
            inbound_id: Some(d.inbound_id),
            state: Some(d.state.as_str().into()),
            revision: Some(d.revision),
            ..Default::default()
        });
    }
    for r in reviews {
        items.push(HistoryItem {
            kind: HistoryKind::Review,
            at: rfc3339(r.created_at),
            id: r.id.0,
            draft_id: Some(r.draft_id),
            revision: Some(r.revision),
            decision: Some(r.decision.as_str().into()),
            ..Default::default()
        });
    }
    items.sort_by_key(HistoryItem::sort_key);
    Ok(items)
}

/// The customer's view with one page of history.
fn view(
    conn: &mut DbConn,
    c: &CustomerRow,
    page: &Page,
    asked: CustomerId,
) -> Result<CustomerView> {
    let all = history(conn, c.id)?;
    let start = match &page.after {
        None => 0,
        Some(cursor) => {
            let key = HistoryItem::parse_cursor(cursor).ok_or_else(|| {
                Error::BadRequest(format!(
                    "after={cursor:?} is not a cursor this service gave"
                ))
            })?;
            all.partition_point(|i| i.sort_key() <= key)
        }
    };
    let limit = page.limit.clamp(1, 1000) as usize;
    let items: Vec<HistoryItem> = all.iter().skip(start).take(limit).cloned().collect();
    let next = (start + items.len() < all.len())
        .then(|| items.last().map(HistoryItem::cursor))
        .flatten();
    let handles = db::customers::handles_of(conn, c.id)?;
    Ok(CustomerView {
        id: c.id,
        crm_ref: c.crm_ref.clone(),
        created_at: rfc3339(c.created_at),
        handles: handles.into_iter().map(HandleView::from).collect(),
        history: items,
        next,
        merged_into: (asked != c.id).then_some(c.id),
    })
}

/// The record `id` names (not following merges) with the first page of its history: what
/// the writes and the search answer.
fn first_page(conn: &mut DbConn, id: CustomerId) -> Result<CustomerView> {
    let c = load(conn, id)?;
    let page = Page {
        after: None,
        limit: 100,
    };
    view(conn, &c, &page, id)
}

/// A customer with their handles and (a page of) their history. A merged-away id answers
/// the surviving record, with `merged_into` naming it. Errors: 404 unknown id.
pub fn get(
    conn: &mut DbConn,
    caller: &Caller,
    id: CustomerId,
    page: &Page,
) -> Result<CustomerView> {
    caller.require(Permission::Read)?;
    let c = survivor(conn, id)?;
    view(conn, &c, page, id)
}

/// Customers by handle (on any channel, `@` optional, any case) and/or CRM reference; both
/// given, those matching both. Errors: 400 when neither is given.
pub fn find(
    conn: &mut DbConn,
    caller: &Caller,
    handle: Option<&str>,
    crm_ref: Option<&str>,
) -> Result<Vec<CustomerView>> {
    caller.require(Permission::Read)?;
    let by_handle = match handle.map(search_form).filter(|h| !h.is_empty()) {
        Some(h) => Some(db::customers::with_handle(conn, &h)?),
        None => None,
    };
    let by_ref = match crm_ref.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => Some(
            db::customers::by_crm_ref(conn, r)?
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let ids: Vec<CustomerId> = match (by_handle, by_ref) {
        (None, None) => {
            return Err(Error::BadRequest(
                "give handle= or crm_ref= (or both) to find a customer".into(),
            ))
        }
        (Some(h), None) => h,
        (None, Some(r)) => r,
        (Some(h), Some(r)) => h.into_iter().filter(|id| r.contains(id)).collect(),
    };
    ids.into_iter().map(|id| first_page(conn, id)).collect()
}

fn check_crm_ref(crm_ref: &str) -> Result<()> {
    check_field("crm_ref", crm_ref, 128, true).map_err(Error::BadRequest)
}

/// Sets (or, with `None`, clears) the CRM reference. Records `customer.updated` when it
/// changes. Errors: 400 bad reference, 404 unknown, 409 merged away.
pub fn set_crm_ref(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: CustomerId,
    crm_ref: Option<&str>,
) -> Result<CustomerView> {
    caller.require(Permission::ManageCustomers)?;
    let crm_ref = crm_ref.map(str::trim);
    if let Some(r) = crm_ref {
        check_crm_ref(r)?;
    }
    write_tx(conn, |conn| {
        let c = live(conn, id)?;
        if c.crm_ref.as_deref() != crm_ref {
            db::customers::set_crm_ref(conn, id, crm_ref)?;
            db::audit::append(
                conn,
                ctx.clock.now().naive_utc(),
                &Actor::User(caller.id),
                Some(&id),
                &AuditAction::CustomerUpdated {
                    crm_ref: crm_ref.map(str::to_string),
                    previous_crm_ref: c.crm_ref.clone(),
                },
            )?;
        }
        first_page(conn, id)
    })
}

/// A handle to link to a customer.
#[derive(Debug, Clone)]
pub struct NewHandle {
    pub channel: String,
    pub handle: String,
    pub external_user_id: Option<String>,
}

/// Links a handle to the customer. Records `customer.linked`; linking one the customer
/// already has changes nothing. Errors: 400 unknown channel or a handle not in the
/// channel's syntax, 404 unknown customer, 409 merged away or the handle belongs to another
/// customer (merge instead).
pub fn link(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: CustomerId,
    h: &NewHandle,
) -> Result<CustomerView> {
    caller.require(Permission::ManageCustomers)?;
    let channel: Channel = h.channel.parse().map_err(Error::BadRequest)?;
    let handle = channel.normalize_handle(&h.handle).ok_or_else(|| {
        Error::BadRequest(format!(
            "handle {:?}: {}",
            h.handle,
            channel.handle_syntax()
        ))
    })?;
    if let Some(ext) = &h.external_user_id {
        check_field("external_user_id", ext, 128, true).map_err(Error::BadRequest)?;
    }
    write_tx(conn, |conn| {
        live(conn, id)?;
        match db::customers::owner_of_handle(conn, channel.as_str(), &handle)? {
            Some(owner) if owner == id => {}
            Some(owner) => {
                return Err(Error::Conflict(format!(
                    "{channel} handle {handle:?} belongs to customer {owner}; merge the two instead"
                )))
            }
            None => {
                let t = ctx.clock.now().naive_utc();
                db::customers::insert_handle(
                    conn,
                    channel.as_str(),
                    &handle,
                    id,
                    h.external_user_id.as_deref(),
                    t,
                )?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::User(caller.id),
                    Some(&id),
                    &AuditAction::CustomerLinked {
                        channel: channel.as_str().into(),
                        handle: handle.clone(),
                        external_user_id: h.external_user_id.clone(),
                    },
                )?;
            }
        }
        first_page(conn, id)
    })
}

/// Merges customer `from` into `into`: `from`'s handles and history move to `into`, and a
/// `GET` of `from` answers `into` from then on. Two different CRM references need `keep`
/// to name the one the survivor keeps. Records `customer.merged` (subject: the survivor).
///
/// Errors: 400 merging a customer into itself, or a `keep` that is neither reference;
/// 404 unknown customer; 409 either was merged away, or the references differ and `keep`
/// is not given.
pub fn merge(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    into: CustomerId,
    from: CustomerId,
    keep: Option<&str>,
) -> Result<CustomerView> {
    caller.require(Permission::ManageCustomers)?;
    if into == from {
        return Err(Error::BadRequest(
            "a customer cannot be merged into itself".into(),
        ));
    }
    write_tx(conn, |conn| {
        let survivor = live(conn, into)?;
        let other = live(conn, from)?;
        let kept = match (&survivor.crm_ref, &other.crm_ref, keep) {
            (Some(a), Some(b), None) if a != b => {
                return Err(Error::Conflict(format!(
                    "the two customers have different CRM references ({a:?}, {b:?}); name the one to keep in crm_ref"
                )))
            }
            (a, b, Some(k)) if a.as_deref() != Some(k) && b.as_deref() != Some(k) => {
                return Err(Error::BadRequest(format!(
                    "crm_ref {k:?} is neither customer's CRM reference"
                )))
            }
            (_, _, Some(k)) => Some(k.to_string()),
            (a, b, None) => a.clone().or_else(|| b.clone()),
        };
        db::customers::merge(conn, from, into)?;
        db::inbound::move_to_customer(conn, from, into)?;
        if kept != survivor.crm_ref {
            db::customers::set_crm_ref(conn, into, kept.as_deref())?;
        }
        db::audit::append(
            conn,
            ctx.clock.now().naive_utc(),
            &Actor::User(caller.id),
            Some(&into),
            &AuditAction::CustomerMerged {
                from,
                crm_ref: kept,
            },
        )?;
        first_page(conn, into)
    })
}
