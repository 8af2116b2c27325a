//! The route table: every path the gateway answers, written once.
//!
//! The router ([`app`](crate::app::app)) registers the app's routes from these constants, the
//! edge labels metrics and spans with [`route_of`], decides who may call a path with
//! [`is_admin_path`] and [`OPEN`], and the state mounts the crate's admin service at [`ADMIN`].
//! The dashboard's own paths (`/admin/dashboard`, `/admin/breakers...`) are answered by
//! `resilience::admin::Admin`, not by the router; they are here for their labels, and a test in
//! `app` checks that every template is answered by exactly one of the two.
//!
//! A leaf: it imports nothing of the gateway, so everything else may use it.

/// Liveness: the gateway itself is up.
pub(crate) const HEALTH: &str = "/health";
/// Readiness: every upstream has an endpoint admitting traffic.
pub(crate) const READY: &str = "/ready";
/// Prometheus text (operators only).
pub(crate) const METRICS: &str = "/metrics";
/// Where the crate's admin service is mounted, and the scope of the operator's cookie.
pub(crate) const ADMIN: &str = "/admin";
/// Every upstream and endpoint with its breaker.
pub(crate) const ADMIN_STATUS: &str = "/admin/status";
/// The live dashboard (the only path that takes the operator key in its query).
pub(crate) const DASHBOARD: &str = "/admin/dashboard";
/// The breakers' snapshot (the admin service's).
const BREAKERS: &str = "/admin/breakers";
/// The breakers' event stream (the admin service's).
const BREAKER_EVENTS: &str = "/admin/breakers/events";
/// Force a breaker open (the admin service's).
const FORCE_OPEN: &str = "/admin/breakers/{name}/force-open";
/// Force a breaker closed (the admin service's).
const FORCE_CLOSED: &str = "/admin/breakers/{name}/force-closed";
/// Reset a breaker (the admin service's).
const RESET: &str = "/admin/breakers/{name}/reset";
/// The users collection.
pub(crate) const USERS: &str = "/api/users";
/// One user.
pub(crate) const USER: &str = "/api/users/{id}";
/// One user with their orders (the aggregation).
pub(crate) const USER_ORDERS: &str = "/api/users/{id}/orders";
/// The orders collection.
pub(crate) const ORDERS: &str = "/api/orders";
/// One order.
pub(crate) const ORDER: &str = "/api/orders/{id}";

/// Every route template; a `{...}` segment matches any one segment.
pub(crate) const TEMPLATES: [&str; 15] = [
    HEALTH,
    READY,
    METRICS,
    ADMIN_STATUS,
    DASHBOARD,
    BREAKERS,
    BREAKER_EVENTS,
    FORCE_OPEN,
    FORCE_CLOSED,
    RESET,
    USERS,
    USER,
    USER_ORDERS,
    ORDERS,
    ORDER,
];

/// Routes anyone may call: liveness and readiness probes.
pub(crate) const OPEN: [&str; 2] = [HEALTH, READY];

/// The most segments a template has (`/admin/breakers/{name}/force-open`).
const MAX_SEGMENTS: usize = 4;

/// A path split at `/` after its leading one: at most [`MAX_SEGMENTS`] segments, none
/// allocated.
#[derive(Clone, Copy)]
struct Segments<'a> {
    parts: [&'a str; MAX_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    /// `path`'s segments, or `None` when it has more than any template.
    fn of(path: &'a str) -> Option<Self> {
        let mut segments = Segments {
            parts: [""; MAX_SEGMENTS],
            len: 0,
        };
        for segment in path.split('/').skip(1) {
            *segments.parts.get_mut(segments.len)? = segment;
            segments.len += 1;
        }
        Some(segments)
    }

    fn as_slice(&self) -> &[&'a str] {
        &self.parts[..self.len]
    }
}

/// Each template of [`TEMPLATES`] with its segments, split once (the route is looked up on
/// every request; splitting fifteen templates each time was 7k instructions of it).
static SPLIT: std::sync::LazyLock<Vec<(&'static str, Segments<'static>)>> =
    std::sync::LazyLock::new(|| {
        TEMPLATES
            .into_iter()
            .map(|template| {
                let segments = Segments::of(template).expect("no template has more segments");
                (template, segments)
            })
            .collect()
    });

/// The template `path` matches (a trailing slash ignored), if any.
pub(crate) fn template_of(path: &str) -> Option<&'static str> {
    let path = Segments::of(path.trim_end_matches('/'))?;
    let path = path.as_slice();
    SPLIT
        .iter()
        .find(|(_, template)| matches(template.as_slice(), path))
        .map(|(template, _)| *template)
}

/// The route template of `path`, for metrics labels; `other` for no route, so a client
/// inventing paths cannot grow the metrics without bound.
pub fn route_of(path: &str) -> &'static str {
    template_of(path).unwrap_or("other")
}

/// Whether `path`'s segments are `template`'s, a `{...}` segment matching any one. No
/// allocation: this runs on every request.
fn matches(template: &[&str], path: &[&str]) -> bool {
    template.len() == path.len()
        && template
            .iter()
            .zip(path)
            .all(|(want, got)| want == got || want.starts_with('{'))
}

/// Whether `path` is the operators': everything under [`ADMIN`], and [`METRICS`].
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == METRICS
        || path
            .strip_prefix(ADMIN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_not_raw_paths() {
        assert_eq!(route_of("/api/users/42"), "/api/users/{id}");
        assert_eq!(route_of("/api/users/42/orders"), "/api/users/{id}/orders");
        assert_eq!(route_of("/api/orders/"), "/api/orders");
        assert_eq!(route_of("/etc/passwd"), "other");
        assert_eq!(
            route_of("/admin/breakers/users@http://x/reset"),
            "other",
            "a name with slashes is not one segment"
        );
        assert_eq!(
            route_of("/admin/breakers/users/reset"),
            "/admin/breakers/{name}/reset"
        );
        assert_eq!(route_of("/api/users/1/orders/2/3"), "other");
        assert_eq!(route_of("/"), "other");
        assert_eq!(route_of("/admin/breakers/events"), "/admin/breakers/events");
    }

    #[test]
    fn every_template_is_its_own_route() {
        for template in TEMPLATES {
            assert_eq!(template_of(template), Some(template));
        }
    }

    #[test]
    fn admin_paths_are_admin_and_metrics() {
        assert!(is_admin_path("/admin/status"));
        assert!(is_admin_path("/admin"));
        assert!(is_admin_path("/metrics"));
        assert!(!is_admin_path("/administrator"));
        assert!(!is_admin_path("/api/users"));
    }
}
