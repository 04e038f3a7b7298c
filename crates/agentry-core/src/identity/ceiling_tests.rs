//! The privilege ceiling as a property: whatever sequence of role, member
//! and key operations a non-admin performs, no principal ends up holding a
//! permission that it did not hold before and the actor did not hold.

use std::collections::HashMap;

use agentry_db::Db;
use agentry_db::identity::TenantRow;
use agentry_types::{Permission, PermissionSet};
use proptest::prelude::*;

use super::accounts::new_user_row;
use super::{Credential, Identity, IdentitySettings, NewApiKey, Principal, RequestMeta, TenantAccess};
use crate::audit::Audit;

const TENANT: &str = "t-ceiling";
/// Members: 0 is the actor; the others start with these roles.
const START_ROLES: &[&str] = &["actor", "admin", "user", "viewer", "api_user", "custom-a"];
const ROLE_NAMES: &[&str] = &["admin", "user", "viewer", "api_user", "actor", "custom-a", "custom-b"];

#[derive(Debug, Clone)]
enum Op {
    SetRole { target: usize, role: usize },
    PutRole { role: usize, permissions: PermissionSet },
    DeleteRole { role: usize },
    RemoveMember { target: usize },
    CreateKey { scopes: PermissionSet },
}

fn permission_set() -> impl Strategy<Value = PermissionSet> {
    proptest::collection::vec(proptest::sample::select(Permission::ALL), 0..8).prop_map(|ps| ps.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..START_ROLES.len(), 0..ROLE_NAMES.len()).prop_map(|(target, role)| Op::SetRole { target, role }),
        (0..ROLE_NAMES.len(), permission_set()).prop_map(|(role, permissions)| Op::PutRole { role, permissions }),
        (0..ROLE_NAMES.len()).prop_map(|role| Op::DeleteRole { role }),
        (0..START_ROLES.len()).prop_map(|target| Op::RemoveMember { target }),
        permission_set().prop_map(|scopes| Op::CreateKey { scopes }),
    ]
}

struct World {
    identity: Identity,
    db: Db,
    users: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn world(actor: PermissionSet, custom_a: PermissionSet) -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("ceiling.db").display())).await.unwrap();
    db.migrate().await.unwrap();
    let mut settings = IdentitySettings::default();
    settings.argon2.memory_kib = 1024;
    settings.argon2.iterations = 1;
    let identity = Identity::new(db.clone(), Audit::new(db.clone()), crate::secrets::Sealer::development(), "ceiling-tests-master-key".into(), settings).await.unwrap();
    db.insert_tenant(&TenantRow { id: TENANT.into(), slug: TENANT.into(), name: TENANT.into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
    for (name, permissions) in [("actor", actor), ("custom-a", custom_a)] {
        let row = agentry_db::identity::RoleRow {
            tenant_id: TENANT.into(),
            name: name.into(),
            description: String::new(),
            permissions: serde_json::to_string(&permissions).unwrap(),
            created_at_ms: 0,
        };
        db.upsert_role(&row).await.unwrap();
    }
    let mut users = Vec::new();
    for (i, role) in START_ROLES.iter().enumerate() {
        let user = new_user_row(&format!("u{i}@example.com"), None, None, false, true, 0);
        db.insert_user(&user).await.unwrap();
        db.upsert_membership(TENANT, &user.id, role, 0).await.unwrap();
        users.push(user.id);
    }
    World { identity, db, users, _dir: dir }
}

impl World {
    fn principal(&self, i: usize) -> Principal {
        Principal(Credential::User { user_id: self.users[i].clone(), session_id: format!("s{i}"), platform_admin: false, mfa: true })
    }

    /// What each member holds now (members who left hold nothing).
    async fn holdings(&self) -> Vec<PermissionSet> {
        let mut out = Vec::new();
        for user in &self.users {
            out.push(match self.db.membership(TENANT, user).await.unwrap() {
                Some(m) => self.identity.role_permissions(TENANT, &m.role).await.unwrap(),
                None => PermissionSet::empty(),
            });
        }
        out
    }

    async fn actor_access(&self) -> Option<TenantAccess> {
        self.identity.tenant_access(&self.principal(0), TENANT).await.ok()
    }
}

async fn check(actor: PermissionSet, custom_a: PermissionSet, ops: Vec<Op>) -> Result<(), String> {
    let world = world(actor, custom_a).await;
    let before = world.holdings().await;
    let meta = RequestMeta::default();
    let mut keys: HashMap<String, PermissionSet> = HashMap::new();
    for op in &ops {
        // The actor acts with whatever it holds now (it may have demoted itself).
        let Some(access) = world.actor_access().await else { break };
        let _ = match op {
            Op::SetRole { target, role } => world.identity.set_member_role(&access, &world.users[*target], ROLE_NAMES[*role], &meta).await.map(drop),
            Op::PutRole { role, permissions } => world.identity.put_role(&access, ROLE_NAMES[*role], "", *permissions, &meta).await.map(drop),
            Op::DeleteRole { role } => world.identity.delete_role(&access, ROLE_NAMES[*role], &meta).await,
            Op::RemoveMember { target } => world.identity.remove_member(&access, &world.users[*target], &meta).await,
            Op::CreateKey { scopes } => {
                let new = NewApiKey { name: "k".into(), scopes: Some(*scopes), expires_in_secs: None, metadata: serde_json::Value::Null };
                world.identity.create_api_key(&access, new, &meta).await.map(|created| {
                    keys.insert(created.key, created.info.scopes);
                })
            }
        };
    }
    let after = world.holdings().await;
    for (i, (was, now)) in before.iter().zip(&after).enumerate() {
        let gained: Vec<Permission> = now.iter().filter(|p| !was.contains(*p) && !actor.contains(*p)).collect();
        if !gained.is_empty() {
            return Err(format!("member {i} ({}) gained {gained:?} after {ops:?}", START_ROLES[i]));
        }
    }
    for (secret, scopes) in keys {
        if !scopes.is_subset(actor) {
            return Err(format!("a key with scopes {scopes:?} beyond the actor's {actor:?}"));
        }
        // And what the key can do now, through its owner's current role.
        if let Ok(principal) = world.identity.authenticate(&secret).await
            && let Ok(access) = world.identity.tenant_access(&principal, TENANT).await
            && !access.permissions.is_subset(actor)
        {
            return Err(format!("a key acts with {:?} beyond the actor's {actor:?}", access.permissions));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_grants_exceeds_the_granter(some in permission_set(), custom_a in permission_set(), ops in proptest::collection::vec(op(), 1..10)) {
        // The actor can always manage people and roles: that is where grants happen.
        let mut actor = some;
        actor.insert(Permission::ManageUsers);
        actor.insert(Permission::ManageRoles);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = runtime.block_on(check(actor, custom_a, ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
