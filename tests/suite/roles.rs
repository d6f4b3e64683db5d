//! The role matrix, from one table: every endpoint × every role (and no token at all). A
//! role the contract allows never gets 401 or 403; any other role gets 403; without a token
//! every protected call is 401 and the public ones are not.

use crate::common::{Backend, Reply, TestApp};
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(every_endpoint_answers_each_role_as_the_contract_says);

const A: Role = Role::Agent;
const R: Role = Role::Reviewer;
const U: Role = Role::Auditor;
const D: Role = Role::Admin;
const ALL: &[Role] = &[A, R, U, D];

/// (method, path, body, the roles allowed; `None` for a public route). `{id}` is a fresh
/// UUID for each call, `{n}` a counter (bodies that create something).
/// One row of the table.
type Route = (
    &'static str,
    &'static str,
    Option<Value>,
    Option<&'static [Role]>,
);

fn routes() -> Vec<Route> {
    vec![
        ("get", "/api/v1/users", None, Some(&[D])),
        (
            "post",
            "/api/v1/users",
            Some(json!({"username": "new{n}", "roles": ["agent"]})),
            Some(&[D]),
        ),
        (
            "patch",
            "/api/v1/users/{id}",
            Some(json!({"disabled": false})),
            Some(&[D]),
        ),
        (
            "post",
            "/api/v1/users/{id}/password-reset",
            None,
            Some(&[D]),
        ),
        (
            "post",
            "/api/v1/password",
            Some(json!({"token": "nope", "password": "twelve chars or more"})),
            None,
        ),
        ("get", "/api/v1/groups", None, Some(ALL)),
        (
            "post",
            "/api/v1/groups",
            Some(json!({"name": "g{n}"})),
            Some(&[D]),
        ),
        (
            "put",
            "/api/v1/groups/{name}/members",
            Some(json!({"members": []})),
            Some(&[D]),
        ),
        ("get", "/api/v1/hours", None, None),
        (
            "post",
            "/api/v1/inbound",
            Some(
                json!({"channel": "x", "external_id": "m{n}", "author": {"handle": "c{n}"}, "text": "hi"}),
            ),
            Some(&[A, D]),
        ),
        ("get", "/api/v1/inbound", None, Some(ALL)),
        ("get", "/api/v1/inbound/{id}", None, Some(ALL)),
        (
            "post",
            "/api/v1/inbound/{id}/close",
            Some(json!({"reason": "spam"})),
            Some(&[A, D]),
        ),
        ("get", "/api/v1/customers?handle=c1", None, Some(ALL)),
        ("get", "/api/v1/customers/{id}", None, Some(ALL)),
        (
            "patch",
            "/api/v1/customers/{id}",
            Some(json!({"crm_ref": "CRM-1"})),
            Some(&[A, D]),
        ),
        (
            "post",
            "/api/v1/customers/{id}/handles",
            Some(json!({"channel": "x", "handle": "h{n}"})),
            Some(&[A, D]),
        ),
        (
            "post",
            "/api/v1/customers/{id}/merge",
            Some(json!({"from": "{id}"})),
            Some(&[A, D]),
        ),
        (
            "post",
            "/api/v1/check",
            Some(json!({"text": "Thanks!"})),
            Some(ALL),
        ),
        ("get", "/api/v1/policies", None, Some(&[U, D])),
        ("post", "/api/v1/policies/reload", None, Some(&[D])),
        (
            "post",
            "/api/v1/policies/preview",
            Some(
                json!({"files": [{"name": "a.toml", "text": "[[rule]]\nid = \"x.y\"\nkind = \"terms\"\ncategory = \"x\"\nseverity = \"warn\"\nmessage = \"m\"\nterms = [\"zzz\"]\n"}]}),
            ),
            Some(&[U, D]),
        ),
        (
            "post",
            "/api/v1/drafts",
            Some(json!({"inbound_id": "{id}", "text": "Hello"})),
            Some(&[A]),
        ),
        ("get", "/api/v1/drafts", None, Some(ALL)),
        ("get", "/api/v1/drafts/{id}", None, Some(ALL)),
        (
            "put",
            "/api/v1/drafts/{id}",
            Some(json!({"text": "Hello again"})),
            Some(&[A]),
        ),
        ("post", "/api/v1/drafts/{id}/submit", None, Some(&[A])),
        (
            "post",
            "/api/v1/drafts/{id}/reviews",
            Some(json!({"decision": "approve", "comment": "", "revision": 1})),
            Some(&[R]),
        ),
        ("post", "/api/v1/drafts/{id}/retry", None, Some(&[R])),
        ("get", "/api/v1/audit", None, Some(&[U, D])),
        ("get", "/api/v1/audit/verify", None, Some(&[U, D])),
        ("get", "/api/v1/audit/key", None, Some(&[U, D])),
        ("get", "/api/v1/audit/checkpoint", None, Some(&[U, D])),
        (
            "get",
            "/api/v1/audit/proof/inclusion?seq=1&size=1",
            None,
            Some(&[U, D]),
        ),
        (
            "get",
            "/api/v1/audit/proof/consistency?from=1&to=1",
            None,
            Some(&[U, D]),
        ),
        (
            "get",
            "/api/v1/audit/evidence/{draft_id}",
            None,
            Some(&[U, D]),
        ),
        ("get", "/api/v1/openapi.json", None, None),
        // Signed by X, not by a token (here no webhook is configured: 404 for everyone).
        (
            "get",
            "/api/v1/channels/x/webhook?crc_token=abc",
            None,
            None,
        ),
        ("post", "/api/v1/channels/x/webhook", Some(json!({})), None),
        // Last: it ends each role's session.
        ("post", "/api/v1/logout", None, Some(ALL)),
    ]
}

fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &Option<Value>,
    token: Option<&str>,
    n: &mut u32,
) -> Reply {
    *n += 1;
    let fill = |s: &str| {
        s.replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{draft_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{n}", &n.to_string())
            .replace("{name}", "no-such-group")
    };
    let path = fill(path);
    let body = body
        .as_ref()
        .map(|b| serde_json::from_str::<Value>(&fill(&b.to_string())).unwrap());
    match (method, body) {
        ("get", _) => app.get(&path, token),
        ("post", Some(b)) => app.post(&path, token, &b),
        ("post", None) => app.post_empty(&path, token),
        ("put", Some(b)) => app.put(&path, token, &b),
        ("patch", Some(b)) => app.patch(&path, token, &b),
        (m, b) => panic!("no such call in the table: {m} {path} {b:?}"),
    }
}

fn every_endpoint_answers_each_role_as_the_contract_says(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let tokens: Vec<(Role, String)> = ALL
        .iter()
        .map(|r| (*r, app.user(&format!("{}-user", r.as_str()), &[*r])))
        .collect();
    let mut n = 0;
    let documented = app.get("/api/v1/openapi.json", None).body;
    let mut covered = 0;
    for (method, path, body, allowed) in routes() {
        let template = path.split('?').next().unwrap();
        assert!(
            documented["paths"][template].get(method).is_some(),
            "{method} {template}: not a documented route"
        );
        covered += 1;
        let anonymous = call(&app, method, path, &body, None, &mut n);
        match allowed {
            None => assert!(
                ![401, 403].contains(&anonymous.status),
                "{method} {path} is public: {}",
                anonymous.text
            ),
            Some(_) => assert_eq!(
                anonymous.status, 401,
                "{method} {path} without a token: {}",
                anonymous.text
            ),
        }
        for (role, token) in &tokens {
            let r = call(&app, method, path, &body, Some(token), &mut n);
            let may = allowed.is_none_or(|roles| roles.contains(role));
            if may {
                assert!(
                    ![401, 403].contains(&r.status),
                    "{method} {path} as {role}: {} {}",
                    r.status,
                    r.text
                );
                assert!(r.status < 500, "{method} {path} as {role}: {}", r.text);
            } else {
                assert_eq!(r.status, 403, "{method} {path} as {role}: {}", r.text);
            }
        }
    }
    // The table covers every documented operation.
    let operations: usize = documented["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.starts_with("/api/v1/") && *p != "/api/v1/login")
        .map(|(_, item)| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        covered, operations,
        "every operation but login is in the table"
    );
}
