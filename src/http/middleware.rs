//! Around every request: a request id (answered in `x-request-id`), one log line, and the
//! Prometheus request counter and latency histogram, labelled by route pattern (never the
//! raw path, so ids don't explode the label set) and status.

use super::State;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Instant;

/// The service's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("countersign_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "countersign_http_request_duration_seconds",
                "HTTP request latency in seconds",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
        })
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// The Prometheus text of every metric, and (SQLite) the group-commit writer's counters:
    /// commits (one fsync each) and the writes they carried, whose ratio is the mean group.
    pub fn render(
        &self,
        writer: Option<crate::db::writer::WriterStats>,
    ) -> Result<String, prometheus::Error> {
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        if let Some(w) = writer {
            out.push_str(&format!(
                "# HELP countersign_sqlite_commits_total Commits of the SQLite write connection (one fsync each)\n\
                 # TYPE countersign_sqlite_commits_total counter\n\
                 countersign_sqlite_commits_total {}\n\
                 # HELP countersign_sqlite_committed_writes_total Write transactions those commits carried\n\
                 # TYPE countersign_sqlite_committed_writes_total counter\n\
                 countersign_sqlite_committed_writes_total {}\n",
                w.groups, w.requests
            ));
        }
        Ok(out)
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = uuid::Uuid::now_v7().to_string();
    let method = req.method().to_string();
    let path = req.path().to_string();
    let state = req.app_data::<State>().cloned();
    let span = tracing::info_span!("request", request_id = %request_id);
    let result = tracing::Instrument::instrument(next.call(req), span).await;
    let elapsed = started.elapsed();
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into());
            if let Some(s) = &state {
                s.metrics
                    .observe(&method, &route, status, elapsed.as_secs_f64());
            }
            tracing::info!(request_id = %request_id, %method, %path, %route, status, ms = elapsed.as_secs_f64() * 1e3, "request");
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                res.headers_mut().insert(REQUEST_ID, v);
            }
            Ok(res)
        }
        Err(e) => {
            tracing::error!(request_id = %request_id, %method, %path, error = %e, "request failed");
            Err(e)
        }
    }
}
