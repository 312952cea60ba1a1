//! The routes the generator covers: every route of the dispatcher's API with its methods, body,
//! queries and guard, and which key lacks its scope.

use super::{BodyKind, Defect};

/// A route under test.
pub(super) struct Route {
    pub(super) name: &'static str,
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    /// Every method the path answers.
    pub(super) methods: &'static [&'static str],
    pub(super) body: BodyKind,
    /// Bad query strings, when the route reads one.
    pub(super) queries: &'static [&'static str],
    pub(super) guarded: bool,
    /// Whether the path is a route (else every method is a 404).
    pub(super) routed: bool,
}

const fn route(name: &'static str, path: &'static str, methods: &'static [&'static str]) -> Route {
    Route {
        name,
        method: methods[0],
        path,
        methods,
        body: BodyKind::None,
        queries: &[],
        guarded: true,
        routed: true,
    }
}

const WAIT_QUERIES: &[&str] = &[
    "wait_ms=abc",
    "wait_ms=-1",
    "wait_ms=1.5",
    "wait_ms=99999999999999999999",
    "wait_ms=%FF",
    "wait_ms=300001",
    "wait_ms=",
    "bogus=1",
];
const DEAD_QUERIES: &[&str] = &[
    "limit=abc",
    "limit=-1",
    "limit=0",
    "limit=1001",
    "limit=99999999999999999999",
    "limit=%FF",
    "queue=nope",
    "queue=%FF%FE",
    "bogus=1",
];
const EVENTS_QUERIES: &[&str] = &["queue=nope", "queue=%FF%FE", "queue=", "bogus=1"];

/// Every route of `dispatcher/src/http/mod.rs`.
pub(super) const ROUTES: &[Route] = &[
    Route {
        body: BodyKind::Task,
        queries: WAIT_QUERIES,
        ..route("POST /api/tasks", "/api/tasks", &["POST"])
    },
    Route {
        body: BodyKind::Batch,
        ..route("POST /api/tasks/batch", "/api/tasks/batch", &["POST"])
    },
    route("GET /api/tasks/{id}", "/api/tasks/{id}", &["GET", "DELETE"]),
    route(
        "DELETE /api/tasks/{id}",
        "/api/tasks/{id}",
        &["DELETE", "GET"],
    ),
    route(
        "GET /api/tasks/{id}/stream",
        "/api/tasks/{id}/stream",
        &["GET"],
    ),
    Route {
        body: BodyKind::Chat,
        ..route("POST /api/chat", "/api/chat", &["POST"])
    },
    route("GET /api/workers", "/api/workers", &["GET"]),
    route("GET /api/queues", "/api/queues", &["GET"]),
    // `{id}` stands for the queue name here: a bad one is a 400, an unknown one a 404.
    route("GET /api/queues/{q}", "/api/queues/{id}", &["GET"]),
    route(
        "POST /api/queues/{q}/pause",
        "/api/queues/{id}/pause",
        &["POST"],
    ),
    route(
        "POST /api/queues/{q}/resume",
        "/api/queues/{id}/resume",
        &["POST"],
    ),
    Route {
        queries: EVENTS_QUERIES,
        ..route("GET /api/events", "/api/events", &["GET"])
    },
    Route {
        queries: DEAD_QUERIES,
        ..route("GET /api/dead", "/api/dead", &["GET"])
    },
    route(
        "POST /api/dead/{id}/retry",
        "/api/dead/{id}/retry",
        &["POST"],
    ),
    route("GET /api/health/all", "/api/health/all", &["GET"]),
    route("GET /api/metrics", "/api/metrics", &["GET"]),
    Route {
        guarded: false,
        ..route("GET /health", "/health", &["GET"])
    },
    Route {
        guarded: false,
        ..route("GET /metrics", "/metrics", &["GET"])
    },
    // Not a route: under /api the token is checked first, then it is a 404.
    Route {
        routed: false,
        ..route("GET /api/<unknown>", "/api/nope", &["GET"])
    },
    Route {
        body: BodyKind::Completion,
        ..route(
            "POST /v1/chat/completions",
            "/v1/chat/completions",
            &["POST"],
        )
    },
    route("GET /v1/models", "/v1/models", &["GET"]),
    Route {
        routed: false,
        ..route("GET /v1/<unknown>", "/v1/nope", &["GET"])
    },
    Route {
        body: BodyKind::Tenant,
        ..route("POST /api/tenants", "/api/tenants", &["POST", "GET"])
    },
    route("GET /api/tenants", "/api/tenants", &["GET", "POST"]),
    route(
        "GET /api/tenants/{tenant}",
        "/api/tenants/{tenant}",
        &["GET", "PATCH", "DELETE"],
    ),
    Route {
        body: BodyKind::Tenant,
        ..route(
            "PATCH /api/tenants/{tenant}",
            "/api/tenants/{tenant}",
            &["PATCH", "GET", "DELETE"],
        )
    },
    route(
        "DELETE /api/tenants/{tenant}",
        "/api/tenants/{tenant}",
        &["DELETE", "GET", "PATCH"],
    ),
];

/// Which of the target's keys lacks the scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lacking {
    /// The `read` key: it lacks `submit` and `admin`.
    ReadKey,
    /// The `submit` key: it lacks `read` and `admin`.
    SubmitKey,
}

impl Route {
    /// The key without this route's scope; `None` where every key may enter (a task's own
    /// routes, `/v1` reads, the queue views and the dead letters admit both `submit`, which
    /// sees its own tenant's part, and `read`) or no key is asked for.
    pub(super) fn lacking(&self) -> Option<Lacking> {
        if !self.guarded {
            None
        } else if self.method != "GET" || self.path.starts_with("/api/tenants") {
            Some(Lacking::ReadKey)
        } else if self.path.starts_with("/v1")
            || self.path.starts_with("/api/tasks/")
            || self.path.starts_with("/api/queues")
            || self.path == "/api/dead"
        {
            None
        } else {
            Some(Lacking::SubmitKey)
        }
    }

    pub(super) fn defects(&self) -> Vec<Defect> {
        let mut d = vec![Defect::Method, Defect::Protocol];
        if self.guarded {
            d.push(Defect::Auth);
        }
        if self.lacking().is_some() {
            d.push(Defect::Scope);
        }
        if self.path.contains("{id}") || self.path.contains("{tenant}") {
            d.push(Defect::PathId);
        }
        if !self.queries.is_empty() {
            d.push(Defect::Query);
        }
        if self.body != BodyKind::None {
            d.extend([Defect::Body, Defect::Field]);
        }
        if self.path.ends_with("/stream") {
            d.push(Defect::LastEventId);
        }
        d
    }
}
