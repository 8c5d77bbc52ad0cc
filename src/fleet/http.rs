//! The service's HTTP side: `POST /report` (the devices' signed reports and hellos), `GET /api/releases`
//! (the tallies as JSON) and `GET /` (the dashboard: read-only, no buttons; resuming a halted
//! release is the vendor's `fwguard-index halt --resume` with the halt key).

use super::{Fleet, FleetError, ReleaseView};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn now() -> u64 {
    crate::time::unix_now()
}

async fn report(
    State(f): State<Arc<Fleet>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = f.from_source(&peer.ip().to_string(), now()) {
        return (StatusCode::TOO_MANY_REQUESTS, format!("{e}\n")).into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let key = header(crate::agent::report::KEY_HEADER);
    let sig = header(crate::agent::report::SIGNATURE_HEADER);
    let f2 = f.clone();
    let r = tokio::task::spawn_blocking(move || f2.ingest(&body, &key, &sig, now())).await;
    match r {
        Ok(Ok(super::store::Added::New | super::store::Added::Hello)) => {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(super::store::Added::Duplicate)) => {
            (StatusCode::OK, "a report with this id was taken before\n").into_response()
        }
        Ok(Err(e @ FleetError::BadReport(_))) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Ok(Err(e @ FleetError::WrongKey { .. })) => {
            (StatusCode::FORBIDDEN, format!("{e}\n")).into_response()
        }
        Ok(Err(e @ FleetError::TooMany(_))) => {
            (StatusCode::TOO_MANY_REQUESTS, format!("{e}\n")).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!("{e}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Run `f` on the fleet from a blocking thread (the store blocks).
async fn blocking<T: Send + 'static>(
    f: Arc<Fleet>,
    call: impl FnOnce(&Fleet) -> Result<T, FleetError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(move || call(&f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn releases(State(f): State<Arc<Fleet>>) -> Response {
    match blocking(f, |f| f.view(now())).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The devices known, by what they run: (release, devices).
pub type Running = [(Option<String>, u32)];

/// The dashboard page: the devices known (by the release they run), then releases × waves
/// with their counts, the top failing checks, each halt with the rule that fired and when.
pub fn page(running: &Running, views: &[ReleaseView]) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fwguard fleet</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #999;padding:.2em .6em;text-align:right}th{background:#eee}\
         .halted{color:#a00;font-weight:bold}</style></head><body><h1>fwguard fleet</h1>",
    );
    let known: u32 = running.iter().map(|(_, n)| n).sum();
    let by: Vec<String> = running
        .iter()
        .map(|(r, n)| format!("{} ({n})", esc(r.as_deref().unwrap_or("unidentified"))))
        .collect();
    h.push_str(&format!("<p id=\"devices\">{known} device(s) known"));
    if !by.is_empty() {
        h.push_str(&format!(", running: {}", by.join(", ")));
    }
    h.push_str("</p>");
    if views.is_empty() {
        h.push_str("<p id=\"empty\">No reports yet.</p>");
    }
    for v in views {
        let id = esc(&v.release);
        h.push_str(&format!(
            "<section class=\"release\" id=\"release-{id}\"><h2>release {id}</h2>"
        ));
        match &v.halted {
            Some((why, at)) => h.push_str(&format!(
                "<p class=\"halted\">HALTED at {}: {}</p>",
                crate::time::format_time(*at),
                esc(why)
            )),
            None => h.push_str("<p class=\"rolling\">rolling out</p>"),
        }
        h.push_str("<table><tr><th>wave</th><th>installing</th><th>armed</th><th>committed</th><th>rolled back</th><th>trial failed</th><th>presumed failed</th></tr>");
        for t in &v.waves {
            h.push_str(&format!(
                "<tr class=\"wave\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t.wave, t.installing, t.armed, t.committed, t.rolled_back, t.trial_failed, t.presumed_failed
            ));
        }
        h.push_str("</table>");
        if v.uncounted > 0 {
            h.push_str(&format!(
                "<p class=\"uncounted\">{} device(s) not counted: first heard of after their wave began</p>",
                v.uncounted
            ));
        }
        if !v.failing_checks.is_empty() {
            h.push_str("<p>failing checks: ");
            let list: Vec<String> = v
                .failing_checks
                .iter()
                .take(5)
                .map(|(c, n)| format!("<span class=\"check\">{} ({n})</span>", esc(c)))
                .collect();
            h.push_str(&list.join(", "));
            h.push_str("</p>");
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

async fn dashboard(State(f): State<Arc<Fleet>>) -> Response {
    match blocking(f, |f| Ok((f.running()?, f.view(now())?))).await {
        Ok((running, v)) => Html(page(&running, &v)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Serve `fleet` on `listener`, judging every release again each `tick` (presumed failures
/// appear with time alone) and keeping the halt file signed.
pub async fn serve(
    fleet: Arc<Fleet>,
    listener: tokio::net::TcpListener,
    tick: Duration,
) -> std::io::Result<()> {
    let ticking = fleet.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(tick).await;
            let f = ticking.clone();
            match tokio::task::spawn_blocking(move || f.tick(now())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("{e}"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    });
    let app = axum::Router::new()
        .route("/report", post(report))
        .route("/api/releases", get(releases))
        .route("/", get(dashboard))
        .with_state(fleet);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
