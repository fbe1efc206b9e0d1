//! The actor of capture events: the OS user running the relay (R2.1), never a placeholder (R2.2).

use relay_domain::Actor;

use crate::error::ActorError;

/// The OS user this process runs as (its effective uid, looked up in the user database).
///
/// Fails rather than inventing a name: an unresolvable user or a placeholder such as `unknown`
/// is an error, so capture cannot record events without a real actor.
pub fn resolve_os_actor() -> Result<Actor, ActorError> {
    let name = whoami::fallible::username().map_err(ActorError::Lookup)?;
    Actor::new(name).map_err(ActorError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: R2.1
    #[test]
    fn resolves_the_user_running_the_tests() {
        let actor = resolve_os_actor().unwrap();
        assert!(!actor.as_str().trim().is_empty());
    }
}
