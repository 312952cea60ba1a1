//! A seeded generator of bad requests over every route and field of the dispatcher's API (issue
//! 16): wrong types, huge numbers, deep nesting, bytes that are not UTF-8 in paths, headers and
//! bodies, trailing data, wrong methods, bad, unknown or revoked tokens, tenant keys without
//! the route's scope (issue 21), lying framing. Each case carries
//! exactly one defect on an otherwise valid request, so each must be refused; content types are
//! varied as noise (the API reads a JSON body whatever its `Content-Type`).
//!
//! The same seed gives the same cases; [`cases`] first covers every route with every defect
//! that applies to it and every body field once, then draws the rest at random.

use crate::raw_http::RawRequest;

/// splitmix64: a tiny deterministic PRNG, enough to vary test input.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the answer to a case must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One of these statuses, in the README's JSON error shape.
    Refused(&'static [u16]),
    /// One of these statuses, in OpenAI's error shape (`/v1`).
    OpenAi(&'static [u16]),
    /// Not HTTP at all: the HTTP layer's bare 400 with an empty body, before any route.
    Protocol,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Case {
    /// The route, as `METHOD /path`.
    pub route: &'static str,
    /// The defect, e.g. `field max_attempts` or `auth`.
    pub defect: String,
    /// What is sent.
    pub request: RawRequest,
    /// What must come back.
    pub expect: Expect,
}

/// What the generator needs to know of the dispatcher under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// The bearer token.
    pub secret: String,
    /// A queued tool task, so requests about a task get past the lookup to their defect.
    pub task_id: String,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// A tenant, so requests about a tenant get past the lookup to their defect.
    pub tenant_id: String,
    /// A live key with only the `submit` scope.
    pub submit_key: String,
    /// A live key with only the `read` scope.
    pub read_key: String,
    /// A key that was revoked.
    pub revoked_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    Task,
    Batch,
    Chat,
    /// `POST /v1/chat/completions`: refusals in OpenAI's error shape.
    Completion,
    /// `POST /api/tenants`, `PATCH /api/tenants/{tenant}`.
    Tenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    Auth,
    Method,
    PathId,
    Query,
    Body,
    Field,
    LastEventId,
    Protocol,
    /// A live tenant key without the scope the route needs.
    Scope,
}

impl Defect {
    const ALL: &[Defect] = &[
        Self::Scope,
        Self::Auth,
        Self::Method,
        Self::PathId,
        Self::Query,
        Self::Body,
        Self::Field,
        Self::LastEventId,
        Self::Protocol,
    ];
}

mod routes;
use routes::{Lacking, ROUTES, Route};

mod values;

/// `n` cases (at least one per route, defect and field) drawn from `seed` for `target`.
pub fn cases(seed: u64, target: &Target, n: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for r in ROUTES {
        for d in r.defects() {
            if d == Defect::Field {
                for field in 0..values::fields(r.body).len() {
                    out.push(case(&mut rng, target, r, d, Some(field)));
                }
            } else {
                out.push(case(&mut rng, target, r, d, None));
            }
        }
    }
    // The rest: a defect first, then a route it applies to, so the few body routes get as
    // many cases as the many routes without a body.
    while out.len() < n {
        let d = *rng.pick(Defect::ALL);
        let routes: Vec<&'static Route> =
            ROUTES.iter().filter(|r| r.defects().contains(&d)).collect();
        let r = *rng.pick(&routes);
        out.push(case(&mut rng, target, r, d, None));
    }
    out
}

/// One case of `route` with `defect` (on body field number `field`, if given).
fn case(
    rng: &mut Rng,
    t: &Target,
    r: &'static Route,
    defect: Defect,
    field: Option<usize>,
) -> Case {
    let mut req = RawRequest {
        method: r.method.as_bytes().to_vec(),
        target: r
            .path
            .replace("{id}", &t.task_id)
            .replace("{tenant}", &t.tenant_id)
            .into_bytes(),
        headers: vec![(
            "Authorization".into(),
            format!("Bearer {}", t.secret).into_bytes(),
        )],
        ..RawRequest::default()
    };
    if r.body != BodyKind::None {
        req.body = values::valid_body(rng, r.body).into_bytes();
        let ct = *rng.pick(values::CONTENT_TYPES);
        if !ct.is_empty() {
            req.headers
                .push(("Content-Type".into(), ct.as_bytes().to_vec()));
        }
    }
    let mut expect = Expect::Refused(&[400, 422]);
    let label = match defect {
        Defect::Auth => {
            expect = Expect::Refused(&[401]);
            req.headers.remove(0);
            if let Some(v) = values::bad_authorization(rng, &t.secret, &t.revoked_key) {
                req.headers.push(("Authorization".into(), v));
            }
            "auth".to_owned()
        }
        Defect::Method => {
            let m = loop {
                let m = *rng.pick(values::METHODS);
                if !r.methods.contains(&m) {
                    break m;
                }
            };
            req.method = m.as_bytes().to_vec();
            expect = Expect::Refused(if r.routed { &[405] } else { &[404] });
            format!("method {m}")
        }
        Defect::PathId => {
            let id = rng
                .pick(values::BAD_IDS)
                .replace("{long}", &"x".repeat(5000));
            req.target = r
                .path
                .replace("{id}", &id)
                .replace("{tenant}", &id)
                .into_bytes();
            expect = Expect::Refused(&[400, 404, 409, 422]);
            "path id".to_owned()
        }
        Defect::Query => {
            req.target.push(b'?');
            req.target.extend_from_slice(rng.pick(r.queries).as_bytes());
            "query".to_owned()
        }
        Defect::Body => {
            let (mut name, mut body) = values::bad_body(rng, r.body, t.max_body_bytes);
            // Every field of a PATCH is optional: `{}` is a valid (empty) update there.
            while r.method == "PATCH" && name == "missing required fields" {
                (name, body) = values::bad_body(rng, r.body, t.max_body_bytes);
            }
            req.body = body;
            expect = Expect::Refused(if name == "too large" { &[413] } else { &[400] });
            if name == "chunked framing" {
                req.headers
                    .push(("Transfer-Encoding".into(), b"chunked".to_vec()));
            }
            format!("body: {name}")
        }
        Defect::Field => {
            let fields = values::fields(r.body);
            let f = field.unwrap_or_else(|| rng.below(fields.len()));
            let (name, body) = values::bad_field(rng, r.body, f);
            req.body = body.into_bytes();
            format!("field {name}")
        }
        Defect::LastEventId => {
            let v = rng.pick(values::BAD_EVENT_IDS).to_vec();
            req.headers.push(("Last-Event-ID".into(), v));
            expect = Expect::Refused(&[400]);
            "Last-Event-ID".to_owned()
        }
        Defect::Scope => {
            let key = match r.lacking() {
                Some(Lacking::SubmitKey) => &t.submit_key,
                _ => &t.read_key,
            };
            req.headers[0].1 = format!("Bearer {key}").into_bytes();
            expect = Expect::Refused(&[403]);
            "scope".to_owned()
        }
        Defect::Protocol => {
            expect = Expect::Protocol;
            let name = values::break_framing(rng, &mut req);
            format!("protocol: {name}")
        }
    };
    // `/v1` answers in OpenAI's error shape.
    if let (true, Expect::Refused(statuses)) = (r.path.starts_with("/v1"), expect) {
        expect = Expect::OpenAi(statuses);
    }
    Case {
        route: r.name,
        defect: label,
        request: req,
        expect,
    }
}

/// The routes and defect names a list of cases covers, for checking that nothing was skipped.
pub fn coverage(cases: &[Case]) -> Vec<(&'static str, String)> {
    let mut seen: Vec<(&'static str, String)> = cases
        .iter()
        .map(|c| (c.route, c.defect.split(':').next().unwrap_or("").to_owned()))
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// Every route name the generator knows.
pub fn route_names() -> Vec<&'static str> {
    ROUTES.iter().map(|r| r.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            secret: "s3cret".into(),
            task_id: "tool-01JDX3N4Z7Q8R9S0T1V2W3X4Y5".into(),
            max_body_bytes: 4096,
            tenant_id: "tn-0190a".into(),
            submit_key: "sy_s".into(),
            read_key: "sy_r".into(),
            revoked_key: "sy_x".into(),
        }
    }

    #[test]
    fn a_seed_gives_the_same_cases_and_every_route_and_field_is_covered() {
        let a = cases(7, &target(), 300);
        let b = cases(7, &target(), 300);
        let bytes = |cs: &[Case]| cs.iter().map(|c| c.request.to_bytes()).collect::<Vec<_>>();
        assert_eq!(bytes(&a), bytes(&b));
        assert_ne!(bytes(&a), bytes(&cases(8, &target(), 300)));
        let covered = coverage(&a);
        for r in ROUTES {
            for f in values::fields(r.body) {
                let label = format!("field {}", f.name);
                assert!(
                    covered
                        .iter()
                        .any(|(n, l)| *n == r.name && l.starts_with(&label)),
                    "{} {label}",
                    r.name
                );
            }
            assert!(covered.iter().any(|(n, _)| *n == r.name), "{}", r.name);
        }
    }
}
