//! Who may do what to which resource: one rule per resource, whatever the route. Every handler
//! that touches a resource asks here, so two routes to the same records cannot disagree.

use relay_domain::TrailId;
use relay_domain::ports::Role;

use crate::auth::AuthUser;
use crate::error::ApiError;

/// The roles that may export a trail's records: the human-readable `GET /export`, a sealed
/// package through `POST /exports`, and the download of any package of that trail
/// (`GET /exports/{package}`). Operators read records one page at a time; they do not take
/// bulk copies away.
const EXPORT_ROLES: &[Role] = &[Role::Reviewer, Role::Admin, Role::Auditor];

/// Whether `role` may export (or download an export of) `trail`.
pub(crate) fn may_export(role: Role, _trail: &TrailId) -> bool {
    // The same rule for every trail, `_relay` included; the trail is an argument so that a
    // per-trail rule stays in this one place.
    EXPORT_ROLES.contains(&role)
}

/// 403 `forbidden` unless `user` may export `trail` ([`may_export`]).
pub(crate) fn require_export(user: &AuthUser, trail: &TrailId) -> Result<(), ApiError> {
    if may_export(user.account.role, trail) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            format!(
                "the {} role may not export records of trail {trail}",
                user.account.role
            ),
        ))
    }
}
