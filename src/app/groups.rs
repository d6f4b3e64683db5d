//! Reviewer groups: admins make them and set their members (over the API and the command
//! line); review routes (`policies/routes.toml`) name them in their steps. Every change is
//! recorded (`group.created`, `group.updated` with all the members after it).

use super::{Caller, Context};
use crate::audit::{Actor, AuditAction};
use crate::db::groups::GroupRow;
use crate::db::{self, write_tx, DbConn};
use crate::domain::ids::{GroupId, UserId};
use crate::domain::roles::{Permission, Role};
use crate::error::{Error, Result};
use crate::policy::routes::valid_group_name;
use serde::Serialize;
use utoipa::ToSchema;

/// A member as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub id: UserId,
    pub username: String,
}

/// A reviewer group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupView {
    pub id: GroupId,
    pub name: String,
    /// Oldest user first.
    pub members: Vec<MemberView>,
}

fn view(conn: &mut DbConn, g: &GroupRow) -> Result<GroupView> {
    let mut members = Vec::new();
    for id in db::groups::members(conn, g.id)? {
        let u = db::users::by_id(conn, id)?
            .ok_or_else(|| Error::Internal(format!("group {} names no user {id}", g.name)))?;
        members.push(MemberView {
            id,
            username: u.username,
        });
    }
    Ok(GroupView {
        id: g.id,
        name: g.name.clone(),
        members,
    })
}

/// Every group, by name. Any signed-in user may read them (drafts name their groups).
pub fn list(conn: &mut DbConn, caller: &Caller) -> Result<Vec<GroupView>> {
    caller.require(Permission::Read)?;
    all(conn)
}

/// Every group, by name, for the command line.
pub fn all(conn: &mut DbConn) -> Result<Vec<GroupView>> {
    db::groups::all(conn)?
        .iter()
        .map(|g| view(conn, g))
        .collect()
}

/// Makes an empty group. Errors: 403 for anyone but an admin; 400 for a name that is not 1
/// to 64 of `a-z 0-9 - _`; 409 when the name is taken.
pub fn create(ctx: &Context, conn: &mut DbConn, caller: &Caller, name: &str) -> Result<GroupView> {
    caller.require(Permission::Administer)?;
    create_as(
        conn,
        &Actor::User(caller.id),
        name,
        ctx.clock.now().naive_utc(),
    )
}

/// [`create`] for the command line (actor `system`), at `t`.
pub fn create_as(
    conn: &mut DbConn,
    actor: &Actor,
    name: &str,
    t: chrono::NaiveDateTime,
) -> Result<GroupView> {
    if !valid_group_name(name) {
        return Err(Error::BadRequest(format!(
            "a group name is 1 to 64 lower-case letters, digits, '-' or '_': {:?}",
            name.chars().take(80).collect::<String>()
        )));
    }
    write_tx(conn, |conn| {
        let g = GroupRow {
            id: GroupId::new(),
            name: name.to_string(),
            created_at: t,
        };
        db::groups::insert(conn, &g)?;
        db::audit::append(
            conn,
            g.created_at,
            actor,
            Some(&g.id),
            &AuditAction::GroupCreated {
                name: g.name.clone(),
            },
        )?;
        view(conn, &g)
    })
}

/// Makes `members` the group's members. Errors: 403 for anyone but an admin; 404 for an
/// unknown group or user; 400 for a user without the reviewer role (only reviewers approve).
pub fn set_members(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    name: &str,
    members: &[UserId],
) -> Result<GroupView> {
    caller.require(Permission::Administer)?;
    let t = ctx.clock.now().naive_utc();
    set_members_as(conn, &Actor::User(caller.id), name, members, t)
}

/// [`set_members`] for the command line (actor `system`), at `t`.
pub fn set_members_as(
    conn: &mut DbConn,
    actor: &Actor,
    name: &str,
    members: &[UserId],
    t: chrono::NaiveDateTime,
) -> Result<GroupView> {
    let mut members = members.to_vec();
    members.sort();
    members.dedup();
    write_tx(conn, |conn| {
        let g = db::groups::by_name(conn, name)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no group is named {:?}",
                name.chars().take(80).collect::<String>()
            ))
        })?;
        for id in &members {
            let u = db::users::by_id(conn, *id)?.ok_or_else(|| Error::not_found("user", *id))?;
            if !u.roles.contains(Role::Reviewer) {
                return Err(Error::BadRequest(format!(
                    "{} does not hold the reviewer role, and only reviewers approve",
                    u.username
                )));
            }
        }
        db::groups::set_members(conn, g.id, &members, t)?;
        db::audit::append(
            conn,
            t,
            actor,
            Some(&g.id),
            &AuditAction::GroupUpdated {
                name: g.name.clone(),
                members: members.clone(),
            },
        )?;
        view(conn, &g)
    })
}
