//! Access-control vocabulary: [`Permission`]s, the built-in [`BuiltinRole`]s
//! and what each grants, and the id newtypes of the identity model.
//!
//! The built-in role table here is the single source of truth for what a
//! built-in role may do; custom roles (per tenant, stored) name permissions
//! from the same enum.
//!
//! Must not: decide which route needs which permission (the server's route
//! table does) or do any I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// One thing a principal may do. Serialised as its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Permission {
            $(#[doc = $doc] $variant,)*
        }

        impl Permission {
            /// Every permission, in declaration order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// The permission's wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }

        impl FromStr for Permission {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    other => Err(UnknownName(other.to_owned())),
                }
            }
        }
    };
}

permissions! {
    UseModels => "use_models": "Call the OpenAI-compatible gateway (`/v1`).",
    UseGeneralAgent => "use_general_agent": "Run the general chat agent.",
    UseMathAgent => "use_math_agent": "Run the math agent.",
    UseCodeAgent => "use_code_agent": "Run the code agent.",
    UseRagAgent => "use_rag_agent": "Run the knowledge (RAG) agent.",
    UseVisionAgent => "use_vision_agent": "Run the vision agent.",
    ManageAgents => "manage_agents": "Create, change and delete custom agents.",
    ReadDocuments => "read_documents": "Search and read the tenant's knowledge.",
    UploadDocuments => "upload_documents": "Add documents to the knowledge base.",
    DeleteDocuments => "delete_documents": "Delete documents.",
    ViewMetrics => "view_metrics": "See usage, costs and metrics.",
    ManageUsers => "manage_users": "Add, change and remove users and memberships of the tenant.",
    ManageRoles => "manage_roles": "Create, change and delete custom roles.",
    ManageApiKeys => "manage_api_keys": "List and revoke other members' API keys (never their secrets: only a key's owner creates or rotates it; own keys need only a session).",
    ViewAudit => "view_audit": "Query, export and verify the audit log.",
    ExportData => "export_data": "Export the tenant's data.",
    ManageTraining => "manage_training": "Manage training and evaluation data.",
    ManageTenant => "manage_tenant": "Change the tenant's settings (MFA policy, name).",
    ManageBilling => "manage_billing": "Set budgets, price overrides, rate-limit tiers of users and keys, cost-optimizer settings; generate and pay invoices.",
    ManageIntegrations => "manage_integrations": "Create, change and delete webhooks and schedules.",
}

/// A name that is not a known permission or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name '{}'", self.0)
    }
}

impl std::error::Error for UnknownName {}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles every tenant has without defining them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    Admin,
    User,
    Viewer,
    ApiUser,
}

impl BuiltinRole {
    pub const ALL: &'static [BuiltinRole] = &[Self::Admin, Self::User, Self::Viewer, Self::ApiUser];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Viewer => "viewer",
            Self::ApiUser => "api_user",
        }
    }

    /// What the role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::Admin => Permission::ALL,
            Self::User => &[UseModels, UseGeneralAgent, UseMathAgent, UseCodeAgent, UseRagAgent, UseVisionAgent, ReadDocuments, UploadDocuments],
            Self::Viewer => &[ReadDocuments, ViewMetrics],
            Self::ApiUser => &[UseModels, UseGeneralAgent, UseMathAgent, UseCodeAgent, UseRagAgent, UseVisionAgent, ReadDocuments],
        }
    }
}

/// The permissions that run an agent: holding at least one of them is what
/// lets a principal read its own threads and runs (a key scoped to
/// `use_models` alone reads none).
pub const AGENT_PERMISSIONS: &[Permission] =
    &[Permission::UseGeneralAgent, Permission::UseMathAgent, Permission::UseCodeAgent, Permission::UseRagAgent, Permission::UseVisionAgent];

impl FromStr for BuiltinRole {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A set of permissions, as a bit set (cheap to copy, intersect and test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub fn empty() -> Self {
        Self(0)
    }

    pub fn all() -> Self {
        Self::from_iter(Permission::ALL.iter().copied())
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & (1 << permission as u64) != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.0 |= 1 << permission as u64;
    }

    /// Permissions in both sets.
    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether every permission of `self` is also in `other`.
    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.iter().copied().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::empty();
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

impl utoipa::PartialSchema for Permission {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::wire_enum::string_enum(&Permission::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>())
    }
}

impl utoipa::ToSchema for Permission {}

/// A list of permission names.
impl utoipa::PartialSchema for PermissionSet {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new().items(utoipa::openapi::Ref::from_schema_name("Permission")).into()
    }
}

impl utoipa::ToSchema for PermissionSet {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("Permission".into(), <Permission as utoipa::PartialSchema>::schema()));
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(deserializer)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit_the_bit_set() {
        assert!(Permission::ALL.len() <= 64);
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(*p));
            assert_eq!(serde_json::to_value(p).ok(), Some(serde_json::Value::from(p.as_str())));
        }
        assert!("fly".parse::<Permission>().is_err());
        for r in BuiltinRole::ALL {
            assert_eq!(r.as_str().parse::<BuiltinRole>(), Ok(*r));
        }
    }

    #[test]
    fn built_in_roles_nest_as_documented() {
        let set = |r: BuiltinRole| r.permissions().iter().copied().collect::<PermissionSet>();
        assert_eq!(set(BuiltinRole::Admin), PermissionSet::all());
        assert!(set(BuiltinRole::User).is_subset(set(BuiltinRole::Admin)));
        assert!(set(BuiltinRole::ApiUser).is_subset(set(BuiltinRole::User)));
        assert!(!set(BuiltinRole::Viewer).contains(Permission::UseModels));
        let json = serde_json::to_string(&set(BuiltinRole::Viewer)).unwrap_or_default();
        assert_eq!(json, r#"["read_documents","view_metrics"]"#);
    }
}
