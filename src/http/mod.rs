//! The HTTP layer (spec/api.md): thin handlers that parse a request, call a use case in
//! `app`, and shape its answer. Nothing here decides business rules.

pub mod audit;
pub mod auth;
pub mod channels;
pub mod check;
pub mod customers;
pub mod drafts;
pub mod error;
pub mod groups;
pub mod health;
pub mod hours;
pub mod inbound;
pub mod limits;
pub mod middleware;
pub mod pages;
pub mod users;

use crate::app::Context;
use crate::error::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_actix_web::{scope, AppExt};

/// What every handler can reach.
pub struct AppState {
    pub ctx: Context,
    pub metrics: middleware::Metrics,
}

pub type State = web::Data<AppState>;

/// Parses an id from a path or body: 400 if it is not a UUID (spec/api.md).
pub fn parse_id<T: std::str::FromStr<Err = crate::domain::ids::InvalidId>>(
    raw: &str,
) -> Result<T, Error> {
    raw.parse()
        .map_err(|e: crate::domain::ids::InvalidId| Error::BadRequest(e.to_string()))
}

/// A list's page size: default 100, 1 to 1000.
pub fn page_limit(limit: Option<i64>) -> Result<i64, Error> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(Error::BadRequest(format!(
            "limit={n}: a page holds 1 to 1000 items"
        ))),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Countersign",
        description = "Safe public replies: compliance checks, four-eyes review, exactly-once posting, a tamper-evident audit log.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-in"),
        (name = "inbound", description = "Customers' posts and customer records"),
        (name = "drafts", description = "Draft replies and their reviews"),
        (name = "checks", description = "Compliance checks and policies"),
        (name = "audit", description = "The audit log"),
        (name = "channels", description = "The networks' webhooks (signed by the network, no token)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The answers any operation can give besides its own (spec/api.md: "No request, however
/// malformed, gets a 5xx"), so that the description lists every status the server sends:
/// 401 and 403 on every protected operation (the sign-in guard runs before any handler),
/// 400 (and 408, a body too slow) wherever there is input, and 429 everywhere (the
/// per-address connection cap).
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        )))),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let item_has_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_input = item_has_params
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let answers = &mut op.responses.responses;
                let mut add = |code: &str, description: &str| {
                    answers
                        .entry(code.to_string())
                        .or_insert_with(|| error(description));
                };
                if has_input {
                    add("400", "malformed: a bad id, query or body");
                }
                if op.request_body.is_some() {
                    add("408", "the body did not arrive in time");
                }
                if protected {
                    add("401", "not signed in, or the token is unknown or expired");
                    add("403", "the caller's roles do not allow this");
                }
                add(
                    "429",
                    "too many connections from this address, or sign-ins locked out",
                );
            }
        }
    }
}

/// The application: every route of `/api/v1` (collected into the OpenAPI description as they
/// are registered, so the description cannot miss one), health and metrics, the JSON error
/// handlers, and the request middleware.
pub fn app(
    state: State,
    limits: web::Data<limits::Limits>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(
            scope::scope("/api/v1")
                .service(auth::login)
                .service(auth::logout)
                .service(users::list)
                .service(users::create)
                .service(users::update)
                .service(users::reset)
                .service(users::set_password)
                .service(groups::list)
                .service(groups::create)
                .service(groups::set_members)
                .service(inbound::create)
                .service(inbound::list)
                .service(inbound::get_one)
                .service(inbound::close)
                .service(customers::find)
                .service(customers::get_one)
                .service(customers::update)
                .service(customers::link)
                .service(customers::merge)
                .service(hours::hours)
                .service(channels::x_crc)
                .service(channels::x_events)
                .service(check::check)
                .service(check::policies)
                .service(check::reload)
                .service(check::preview)
                .service(drafts::create)
                .service(drafts::list)
                .service(drafts::get_one)
                .service(drafts::revise)
                .service(drafts::submit)
                .service(drafts::review)
                .service(drafts::retry)
                .service(audit::query)
                .service(audit::verify)
                .service(audit::key)
                .service(audit::checkpoint)
                .service(audit::inclusion)
                .service(audit::consistency)
                .service(audit::evidence)
                // Inside the scope, which otherwise answers every unmatched /api/v1 path.
                .route("/openapi.json", web::get().to(health::openapi)),
        )
        .split_for_parts();
    add_plain_paths(&mut api);
    // After every route is in: the modifiers of `ApiDoc` run before any is registered.
    utoipa::Modify::modify(&CommonAnswers, &mut api);
    app.app_data(state)
        .app_data(limits)
        .app_data(web::Data::new(api))
        .app_data(error::json_config())
        .app_data(error::path_config())
        .app_data(error::query_config())
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(users::form)
        .service(users::submit)
        .service(pages::draft)
        .service(pages::inbound)
        .default_service(web::to(error::not_found))
        // Outermost last: observe every answer; refuse connections past the cap before
        // anything else; the sign-in guard before the body is read, so an unsigned client
        // cannot make us buffer one; then the body, in time.
        .wrap(actix_web::middleware::from_fn(limits::read_body_in_time))
        .wrap(actix_web::middleware::from_fn(auth::require_sign_in))
        .wrap(actix_web::middleware::from_fn(limits::cap_connections))
        .wrap(actix_web::middleware::from_fn(middleware::observe))
}

/// The routes registered without `#[utoipa::path]` (they take no input), described by hand.
fn add_plain_paths(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::ResponseBuilder;
    for (path, summary) in [
        ("/api/v1/openapi.json", "This OpenAPI description"),
        ("/healthz", "The process answers"),
        (
            "/readyz",
            "The process and its database answer (503 when the database does not)",
        ),
        ("/metrics", "Prometheus metrics (text exposition format)"),
    ] {
        let op = OperationBuilder::new()
            .summary(Some(summary))
            .response("200", ResponseBuilder::new().description("OK").build())
            .build();
        api.paths
            .paths
            .insert(path.to_string(), PathItem::new(HttpMethod::Get, op));
    }
}
