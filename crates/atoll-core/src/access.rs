//! Who is calling, what a route needs, and whether it is granted.
//!
//! A console user acts through their role in a workspace; an API token through its
//! scopes. Both are checked by [`grants`], the only place this rule lives.

pub use atoll_protocol::admin::Role;

/// How much a route changes: each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reads.
    Read,
    /// Configuration and data changes.
    Write,
    /// Secrets, members, tokens.
    Admin,
    /// Deleting the workspace, managing owners.
    Owner,
}

/// What a route requires: an access level, and for writes that app backends make
/// with narrow tokens, the module scope that also grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The level needed from a role.
    pub access: Access,
    /// A token scope that grants this route on its own (e.g. `push:send`).
    pub scope: Option<&'static str>,
}

impl Requirement {
    /// A read.
    pub const READ: Requirement = Requirement {
        access: Access::Read,
        scope: None,
    };
    /// A write a developer may make.
    pub const WRITE: Requirement = Requirement {
        access: Access::Write,
        scope: None,
    };
    /// An admin-only change.
    pub const ADMIN: Requirement = Requirement {
        access: Access::Admin,
        scope: None,
    };
    /// An owner-only change.
    pub const OWNER: Requirement = Requirement {
        access: Access::Owner,
        scope: None,
    };

    /// A write that a token with `scope` may also make.
    pub const fn write_with_scope(scope: &'static str) -> Requirement {
        Requirement {
            access: Access::Write,
            scope: Some(scope),
        }
    }
}

/// The highest access a role has.
pub fn role_access(role: Role) -> Access {
    match role {
        Role::Owner => Access::Owner,
        Role::Admin => Access::Admin,
        Role::Developer => Access::Write,
        Role::Viewer => Access::Read,
    }
}

/// The caller's standing in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A user with a role (instance admins count as owners everywhere).
    Role(Role),
    /// An API token of this workspace with its scopes.
    Scopes(Vec<String>),
}

/// Whether a standing satisfies a requirement.
pub fn grants(standing: &Standing, requirement: Requirement) -> bool {
    match standing {
        Standing::Role(role) => role_access(*role) >= requirement.access,
        Standing::Scopes(scopes) => {
            let has = |wanted: &str| scopes.iter().any(|scope| scope == wanted);
            // `admin` tokens manage the workspace but never own it.
            (has("admin") && requirement.access <= Access::Admin)
                || (requirement.access == Access::Read && has("read"))
                || (requirement.access == Access::Write && requirement.scope.is_some_and(has))
        }
    }
}

/// Whether a user with `actor` role may give or take away `target` role: nobody
/// hands out more than they hold, and only owners touch owners.
pub fn may_assign(actor: &Standing, target: Role) -> bool {
    match actor {
        Standing::Role(role) => role_access(*role) >= role_access(target).max(Access::Admin),
        Standing::Scopes(_) => grants(actor, Requirement::ADMIN) && target != Role::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        let viewer = Standing::Role(Role::Viewer);
        assert!(grants(&viewer, Requirement::READ));
        assert!(!grants(&viewer, Requirement::WRITE));
        let developer = Standing::Role(Role::Developer);
        assert!(grants(&developer, Requirement::WRITE));
        assert!(!grants(&developer, Requirement::ADMIN));
        assert!(grants(&Standing::Role(Role::Owner), Requirement::OWNER));
        assert!(!grants(&Standing::Role(Role::Admin), Requirement::OWNER));
    }

    #[test]
    fn scopes_grant_only_what_they_name() {
        let push = Standing::Scopes(vec!["push:send".into()]);
        assert!(grants(&push, Requirement::write_with_scope("push:send")));
        assert!(!grants(&push, Requirement::write_with_scope("sync:write")));
        assert!(!grants(&push, Requirement::READ));
        assert!(!grants(&push, Requirement::WRITE));
        let admin = Standing::Scopes(vec!["admin".into()]);
        assert!(grants(&admin, Requirement::ADMIN));
        assert!(!grants(&admin, Requirement::OWNER));
        let read = Standing::Scopes(vec!["read".into()]);
        assert!(grants(&read, Requirement::READ));
        assert!(!grants(&read, Requirement::WRITE));
    }

    #[test]
    fn nobody_assigns_above_themselves() {
        assert!(may_assign(&Standing::Role(Role::Owner), Role::Owner));
        assert!(may_assign(&Standing::Role(Role::Admin), Role::Developer));
        assert!(!may_assign(&Standing::Role(Role::Admin), Role::Owner));
        assert!(!may_assign(&Standing::Role(Role::Developer), Role::Viewer));
        assert!(!may_assign(
            &Standing::Scopes(vec!["admin".into()]),
            Role::Owner
        ));
    }
}
