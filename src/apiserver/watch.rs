//! Watches: `GET ...?watch=true` as a stream of newline-delimited watch events. In: a
//! request with selectors, `resourceVersion`, `timeoutSeconds` and `allowWatchBookmarks`;
//! out: the initial ADDED events (or the changes since the given resourceVersion, or a
//! `410 Expired` ERROR event when it is older than the history), then live changes
//! filtered by the selectors, periodic BOOKMARKs, until the timeout, a client hang-up or
//! an injected close; as one-row Tables when kubectl asks for Tables. Reads the store's
//! history and change broadcast; asks `faults` whether to answer 410 or to close early.

use super::convert;
use super::request::{Ctx, Target, error};
use super::status::ApiError;
use super::store::Change;
use super::table;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Answers a watch request.
pub fn watch(cx: &Ctx, t: &Target) -> Response {
    let (labels, fields) = match cx.selectors(&t.def) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let timeout = cx
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = cx.q("allowWatchBookmarks") == Some("true");
    let rv_param = cx.q("resourceVersion").map(str::to_owned);
    let store = cx.s.store.lock();
    let rx = store.subscribe();
    let key = t.def.storage_key();
    let ns = t.namespace.clone();
    // Changes carry stored objects; selectors apply to them as this resource serves them.
    let def = t.def.clone();
    let matches = move |o: &Value| {
        let o = convert::served(&def, o);
        labels.matches_object(&o)
            && fields.matches(&o)
            && ns.as_deref().is_none_or(|n| o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n))
    };
    let mut initial: Vec<Value> = Vec::new();
    let def = t.def.clone();
    // With kubectl's Table Accept header each event carries a one-row Table; the first
    // one has the column definitions.
    let tables = cx.wants_table();
    let first = AtomicBool::new(true);
    let event = move |kind: &str, o: &Value| {
        let served = convert::served(&def, o);
        if !tables {
            return json!({"type": kind, "object": served});
        }
        let rv = served.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
        let headers = first.swap(false, Ordering::Relaxed);
        let row = table::table(&def, &[Arc::new(served.into_owned())], json!({"resourceVersion": rv}), headers);
        json!({"type": kind, "object": row})
    };
    let gone = cx.s.faults.take_gone();
    let from_rv: u64 = match rv_param.as_deref() {
        None | Some("0") | Some("") => {
            for o in store.list(&t.def, t.namespace.as_deref()) {
                if matches(&o) {
                    initial.push(event("ADDED", &o));
                }
            }
            store.rv()
        }
        Some(rv) => {
            let rv: u64 = match rv.parse() {
                Ok(r) => r,
                Err(_) => {
                    return error(&ApiError::bad_request(format!("invalid resource version: {rv}")));
                }
            };
            match store.since(&key, rv) {
                Some(changes) if !gone => {
                    for c in changes {
                        if let Some(e) = transition(&c, &matches) {
                            initial.push(event(e.0, e.1));
                        }
                    }
                    rv.max(store.rv())
                }
                _ => {
                    let status = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        store.compacted().max(rv + 1)
                    ))
                    .body();
                    initial.push(json!({"type": "ERROR", "object": status}));
                    let body = initial.iter().map(|e| format!("{e}\n")).collect::<String>();
                    drop(store);
                    return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
                }
            }
        }
    };
    drop(store);
    // Events queued for the client; a full queue makes the stream task wait for it.
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    let faults = cx.s.faults.clone();
    let interval = cx.s.bookmark_interval;
    let api_version = t.def.api_version();
    let kind = t.def.kind.clone();
    let store = cx.s.store.clone();
    tokio::spawn(async move {
        let mut rx = rx;
        let mut sent = 0usize;
        let mut last_rv = from_rv;
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(format!("{v}\n")))).await.is_ok() }
        };
        for e in initial {
            if !send(e).await {
                return;
            }
            sent += 1;
            if faults.close_watch(sent) {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = store.lock().rv().max(last_rv);
                    let b = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv.to_string()}}});
                    if !send(b).await { return; }
                }
                msg = rx.recv() => match msg {
                    Ok(c) => {
                        if c.key != key || c.rv <= last_rv { continue; }
                        last_rv = c.rv;
                        if let Some((k, o)) = transition(&c, &matches) {
                            if !send(event(k, o)).await { return; }
                            sent += 1;
                            if faults.close_watch(sent) { return; }
                        }
                    }
                    // A watcher that fell behind is closed; the client resumes or relists.
                    Err(_) => return,
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(&ApiError::new(500, "InternalError", "cannot build the watch response")))
}

/// The event a watcher sees for a change, given its filter: objects moving into the
/// selection are ADDED, moving out are DELETED.
fn transition<'a>(c: &'a Change, matches: &impl Fn(&Value) -> bool) -> Option<(&'static str, &'a Value)> {
    let now = matches(&c.object);
    let before = c.old.as_deref().map(matches);
    match (c.kind, before, now) {
        ("MODIFIED", Some(false), true) => Some(("ADDED", &c.object)),
        ("MODIFIED", Some(true), false) => Some(("DELETED", &c.object)),
        (_, _, true) => Some((c.kind, &c.object)),
        _ => None,
    }
}
