//! OAuth 2.0 scopes of an access token, and how they follow from roles.
//!
//! | role | scopes its tokens may carry |
//! |---|---|
//! | `viewer` | `prompts:read` |
//! | `editor` | `prompts:read prompts:write` |
//! | `admin` | `prompts:read prompts:write keys:admin` |
//!
//! A token request may ask for fewer (narrowing), never for more. Each scope
//! stands for one role's threshold: an action that needs the viewer role
//! also needs `prompts:read`, one that needs the editor role `prompts:write`,
//! one that needs the admin role (API keys, users, the audit log, deleting a
//! prompt) `keys:admin`. The scopes are independent of each other: a token
//! narrowed to `keys:admin` alone may manage keys but not read prompts.

use std::fmt;

use crate::Role;

/// One scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    PromptsRead,
    PromptsWrite,
    KeysAdmin,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 3] = [Scope::PromptsRead, Scope::PromptsWrite, Scope::KeysAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PromptsRead => "prompts:read",
            Scope::PromptsWrite => "prompts:write",
            Scope::KeysAdmin => "keys:admin",
        }
    }

    /// The scope an action needing `role` also needs.
    pub fn for_role(role: Role) -> Scope {
        match role {
            Role::Viewer => Scope::PromptsRead,
            Role::Editor => Scope::PromptsWrite,
            Role::Admin => Scope::KeysAdmin,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::PromptsRead => 1,
            Scope::PromptsWrite => 2,
            Scope::KeysAdmin => 4,
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes; printed space-separated in canonical order (RFC 6749
/// §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

/// Why a `scope` parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope '{0}'")]
    Unknown(String),
    #[error("the scope is empty")]
    Empty,
}

impl ScopeSet {
    /// Every scope a holder of `role` may be granted.
    pub fn of_role(role: Role) -> ScopeSet {
        let mut set = ScopeSet::default();
        for scope in Scope::ALL {
            if role.allows(match scope {
                Scope::PromptsRead => Role::Viewer,
                Scope::PromptsWrite => Role::Editor,
                Scope::KeysAdmin => Role::Admin,
            }) {
                set.0 |= scope.bit();
            }
        }
        set
    }

    /// Parses a space-delimited `scope` value (RFC 6749 §3.3: tokens
    /// separated by spaces, order and repetition insignificant). Unknown
    /// names are refused; so is a value naming no scope at all.
    pub fn parse(value: &str) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::default();
        for name in value.split(' ').filter(|s| !s.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| ScopeError::Unknown(name.chars().take(64).collect()))?;
            set.0 |= scope.bit();
        }
        if set.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(set)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_cumulative_scopes() {
        assert_eq!(ScopeSet::of_role(Role::Viewer).to_string(), "prompts:read");
        assert_eq!(ScopeSet::of_role(Role::Editor).to_string(), "prompts:read prompts:write");
        assert_eq!(ScopeSet::of_role(Role::Admin).to_string(), "prompts:read prompts:write keys:admin");
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            assert!(ScopeSet::of_role(role).contains(Scope::for_role(role)));
        }
    }

    #[test]
    fn parse_is_order_and_repetition_insensitive_and_strict_on_names() {
        let s = ScopeSet::parse("keys:admin  prompts:read keys:admin").unwrap_or_default();
        assert_eq!(s.to_string(), "prompts:read keys:admin");
        assert!(s.is_subset_of(ScopeSet::of_role(Role::Admin)));
        assert!(!s.is_subset_of(ScopeSet::of_role(Role::Editor)));
        assert_eq!(ScopeSet::parse("prompts:read admin"), Err(ScopeError::Unknown("admin".into())));
        assert_eq!(ScopeSet::parse("   "), Err(ScopeError::Empty));
        assert_eq!(ScopeSet::parse("PROMPTS:READ"), Err(ScopeError::Unknown("PROMPTS:READ".into())));
    }
}
