//! Who is calling and what they may do (issue 21). The caller is `ROOT_NODE_SECRET` (admin) or a
//! tenant's key; each route needs a scope ([`need`]), checked with the token before routing, so
//! a key without it gets 403 naming the scope on every route, unknown ones included (deny by
//! default: a route not listed here needs `admin`). Which *tasks* a caller sees is decided by
//! the handlers after reading the record ([`Caller::may_read`], [`Caller::may_change`]): another
//! tenant's task answers 404, as if it did not exist.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use switchyard_shared::tenant::{Scope, Tenant};

use super::error::ApiError;

/// The authenticated caller of a request, put in its extensions by [`super::auth`].
#[derive(Debug, Clone)]
pub enum Caller {
    /// `ROOT_NODE_SECRET` (or no secret configured): everything.
    Admin,
    /// A tenant's key.
    Tenant(Arc<Tenant>),
}

/// The scopes that admit a request to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `admin`.
    Admin,
    /// `submit`.
    Submit,
    /// `read`.
    Read,
    /// `submit` (its own tasks) or `read` (every task).
    SubmitOrRead,
}

impl Need {
    /// The scope names a refusal cites.
    pub fn names(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Submit => "submit",
            Self::Read => "read",
            Self::SubmitOrRead => "submit or read",
        }
    }
}

impl Caller {
    /// The tenant id its tasks are recorded under (`None`: the admin key).
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Self::Admin => None,
            Self::Tenant(t) => Some(&t.id),
        }
    }

    /// The tenant, for quotas (`None`: the admin key, unlimited).
    pub fn tenant(&self) -> Option<&Tenant> {
        match self {
            Self::Admin => None,
            Self::Tenant(t) => Some(t),
        }
    }

    fn has(&self, scope: Scope) -> bool {
        match self {
            Self::Admin => true,
            Self::Tenant(t) => t.has(Scope::Admin) || t.has(scope),
        }
    }

    /// Whether it may enter a route that needs `need`.
    pub fn admits(&self, need: Need) -> bool {
        match need {
            Need::Admin => self.has(Scope::Admin),
            Need::Submit => self.has(Scope::Submit),
            Need::Read => self.has(Scope::Read),
            Need::SubmitOrRead => self.has(Scope::Submit) || self.has(Scope::Read),
        }
    }

    fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.tenant_id(), owner), (Some(me), Some(o)) if me == o)
    }

    /// Whether it may see every tenant's tasks (else only its own tenant's).
    pub fn reads_all(&self) -> bool {
        self.has(Scope::Read)
    }

    /// Whether it may see a task recorded under tenant `owner`.
    pub fn may_read(&self, owner: Option<&str>) -> bool {
        self.has(Scope::Read) || (self.has(Scope::Submit) && self.owns(owner))
    }

    /// Whether it may cancel or replay a task recorded under tenant `owner`.
    pub fn may_change(&self, owner: Option<&str>) -> bool {
        self.has(Scope::Admin) || (self.has(Scope::Submit) && self.owns(owner))
    }
}

/// The scopes that admit `method` on `path`.
pub fn need(method: &Method, path: &str) -> Need {
    let path = path.trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let reading = *method == Method::GET || *method == Method::HEAD;
    match (parts.as_slice(), reading) {
        (["api", "tenants", ..], _) => Need::Admin,
        (["api", "tasks", _] | ["api", "tasks", _, "stream"], true) => Need::SubmitOrRead,
        // A `submit` key lists its own tenant's dead letters only (`dead::list`).
        (["api", "dead"], true) => Need::SubmitOrRead,
        (["v1", ..], true) => Need::SubmitOrRead,
        // A `submit` key sees its own backlog only (`queues::for_caller`).
        (["api", "queues"] | ["api", "queues", _], true) => Need::SubmitOrRead,
        (_, true) => Need::Read,
        (["api", "tasks"] | ["api", "tasks", "batch"] | ["api", "chat"], false)
        | (["v1", "chat", "completions"], false)
            if *method == Method::POST =>
        {
            Need::Submit
        }
        (["api", "dead", _, "retry"], false) if *method == Method::POST => Need::Submit,
        (["api", "tasks", _], false) if *method == Method::DELETE => Need::Submit,
        _ => Need::Admin,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only reachable on a path no guard covers, which no handler using this serves.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized("no authenticated caller"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::tenant::Quotas;

    fn tenant(id: &str, scopes: &[Scope]) -> Caller {
        Caller::Tenant(Arc::new(Tenant {
            id: id.into(),
            name: id.into(),
            scopes: scopes.to_vec(),
            quotas: Quotas::default(),
            created_at: String::new(),
            key_hash: String::new(),
        }))
    }

    #[test]
    fn every_route_needs_its_scope_and_unknown_changes_need_admin() {
        let (get, post, del, patch) = (Method::GET, Method::POST, Method::DELETE, Method::PATCH);
        let cases = [
            (&post, "/api/tasks", Need::Submit),
            (&post, "/api/tasks/batch", Need::Submit),
            (&post, "/api/chat", Need::Submit),
            (&post, "/v1/chat/completions", Need::Submit),
            (&post, "/api/dead/tool-x/retry", Need::Submit),
            (&del, "/api/tasks/tool-x", Need::Submit),
            (&get, "/api/tasks/tool-x", Need::SubmitOrRead),
            (&get, "/api/tasks/tool-x/stream", Need::SubmitOrRead),
            (&get, "/v1/models", Need::SubmitOrRead),
            (&get, "/api/queues", Need::SubmitOrRead),
            (&get, "/api/queues/chat", Need::SubmitOrRead),
            (&get, "/api/dead", Need::SubmitOrRead),
            (&get, "/api/workers", Need::Read),
            (&get, "/api/metrics", Need::Read),
            (&get, "/api/tenants", Need::Admin),
            (&post, "/api/tenants", Need::Admin),
            (&patch, "/api/tenants/tn-1", Need::Admin),
            (&del, "/api/tenants/tn-1", Need::Admin),
            (&post, "/api/queues/chat/pause", Need::Admin),
            (&del, "/api/queues/chat", Need::Admin),
            (&post, "/api/nope", Need::Admin),
            (&patch, "/api/tasks/tool-x", Need::Admin),
        ];
        for (m, p, n) in cases {
            assert_eq!(need(m, p), n, "{m} {p}");
        }
    }

    #[test]
    fn submit_sees_its_own_tasks_read_sees_all_and_changes_nothing() {
        let a = tenant("tn-a", &[Scope::Submit]);
        let r = tenant("tn-r", &[Scope::Read]);
        assert!(a.may_read(Some("tn-a")) && a.may_change(Some("tn-a")));
        assert!(!a.may_read(Some("tn-b")) && !a.may_change(Some("tn-b")));
        assert!(!a.may_read(None) && !a.may_change(None));
        assert!(r.may_read(Some("tn-a")) && r.may_read(None));
        assert!(!r.may_change(Some("tn-r")) && !r.admits(Need::Submit));
        assert!(Caller::Admin.may_change(Some("tn-a")) && Caller::Admin.admits(Need::Admin));
        assert!(tenant("tn-x", &[Scope::Admin]).may_change(Some("tn-a")));
        assert!(!a.admits(Need::Read) && a.admits(Need::SubmitOrRead));
    }
}
