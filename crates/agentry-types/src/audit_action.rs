//! Every action the audit log records, with its one string form: what the
//! services and the route table record, what `?action=` filters on.
//!
//! Stored events keep the string they were written with (the chain's hashes
//! cover it), so the log of an older installation may hold actions this list
//! no longer has; reading never parses them.
//!
//! Must not: decide what is audited (the services and the route table do).

use crate::wire_enum::wire_enum;

wire_enum! {
    /// What an audit event records.
    AuditAction ("audit action") {
        AdminBootstrap => "admin.bootstrap": "The first tenant and administrator were created.",
        AgentCreate => "agent.create": "A custom agent was created.",
        AgentUpdate => "agent.update": "A custom agent got a new version.",
        AgentDelete => "agent.delete": "A custom agent was deleted.",
        AgentToolCall => "agent.tool_call": "An agent run called a tool.",
        AnswerCacheStore => "answer_cache.store": "An answer was stored in the answer cache.",
        ApiKeyCreate => "api_key.create": "An API key was created.",
        ApiKeyRevoke => "api_key.revoke": "An API key was revoked.",
        ApiKeyRotate => "api_key.rotate": "An API key's secret was replaced.",
        AuditExport => "audit.export": "The audit log was exported.",
        AuditKeyed => "audit.keyed": "The chain moved to keyed hashes (seals the legacy events before it).",
        AuditErase => "audit.erase": "Personal fields of earlier events were erased.",
        AuthLogin => "auth.login": "A password sign-in (or a refused one).",
        AuthOidcLogin => "auth.oidc_login": "A single sign-on sign-in (or a refused one).",
        AuthOidcLink => "auth.oidc_link": "A signed-in user linked a single sign-on identity.",
        AuthPasswordChange => "auth.password_change": "A user changed their password.",
        AuthTokenRejected => "auth.token_rejected": "A forged, tampered or unknown access token was refused (at most one event per client address a minute).",
        AuthApiKeyRejected => "auth.api_key_rejected": "An unknown or revoked API key was refused (at most one event per client address a minute).",
        AuthRefreshReuse => "auth.refresh_reuse": "A used refresh token was presented again (its session family was revoked).",
        BudgetPut => "budget.put": "A budget was created or changed.",
        BudgetDelete => "budget.delete": "A budget was deleted.",
        BudgetSoftLimitReached => "budget.soft_limit_reached": "Spending crossed a budget's soft limit.",
        CollectionCreate => "collection.create": "A collection was created.",
        CollectionDelete => "collection.delete": "A collection was deleted.",
        DocumentCreate => "document.create": "A document (or a new version of one) was uploaded.",
        DocumentDelete => "document.delete": "A document was deleted.",
        JobCancel => "job.cancel": "A job was cancelled.",
        JobRetry => "job.retry": "An ended job was queued again.",
        DocumentVersionDelete => "document_version.delete": "A document version was deleted.",
        DocumentVersionRestore => "document_version.restore": "An earlier document version was made current again.",
        GroupCreate => "group.create": "A group was created.",
        GroupUpdate => "group.update": "A group was renamed or described.",
        GroupDelete => "group.delete": "A group was deleted.",
        GroupMemberAdd => "group.member_add": "A member joined a group.",
        GroupMemberRemove => "group.member_remove": "A member left a group.",
        InvitationCreate => "invitation.create": "Someone was invited to the tenant.",
        InvitationAccept => "invitation.accept": "An invitation was accepted (or a refused attempt).",
        InvitationRevoke => "invitation.revoke": "An invitation was withdrawn.",
        InvoiceCreate => "invoice.create": "An invoice was generated.",
        InvoicePay => "invoice.pay": "An invoice was paid.",
        MasterKeyRotate => "master_key.rotate": "The master key and the secrets sealed with it were rotated.",
        McpServerCreate => "mcp_server.create": "An MCP server was registered.",
        McpServerDelete => "mcp_server.delete": "An MCP server was removed.",
        MembershipCreate => "membership.create": "A user joined the tenant.",
        MembershipUpdate => "membership.update": "A member's role changed.",
        MembershipDelete => "membership.delete": "A member left the tenant.",
        MfaEnrol => "mfa.enrol": "A user started TOTP enrolment.",
        MfaEnrolConfirm => "mfa.enrol_confirm": "A user confirmed TOTP enrolment.",
        MfaVerify => "mfa.verify": "A second-factor check at sign-in (or a refused one).",
        MfaDisable => "mfa.disable": "A user turned TOTP off.",
        PermissionDenied => "permission.denied": "A request was refused for lack of a permission.",
        PlatformPricePut => "platform_price.put": "A platform-wide model price was set.",
        PricePut => "price.put": "A tenant's model price override was set.",
        RolePut => "role.put": "A custom role was created or changed.",
        RoleDelete => "role.delete": "A custom role was deleted.",
        SessionRevoke => "session.revoke": "A session was signed out or revoked.",
        SigningKeyRotate => "signing_key.rotate": "The token signing key was rotated.",
        TenantCreate => "tenant.create": "A tenant was created.",
        TenantUpdate => "tenant.update": "A tenant's name or MFA policy changed.",
        TierAssign => "tier.assign": "A rate-limit tier was assigned.",
        TierPut => "tier.put": "A rate-limit tier was defined or changed.",
        UsageSettingsUpdate => "usage_settings.update": "A tenant's cost-optimizer or answer-cache switches changed.",
        UserRegister => "user.register": "An account was registered.",
        UserReclaim => "user.reclaim": "The owner of an address reclaimed an unverified account registered for it.",
        UserVerificationSent => "user.verification_sent": "An address-verification mail was queued.",
        UserVerifyEmail => "user.verify_email": "An address was verified.",
        UserDisable => "user.disable": "A platform administrator disabled an account.",
        UserEnable => "user.enable": "A platform administrator enabled an account.",
    }
}
