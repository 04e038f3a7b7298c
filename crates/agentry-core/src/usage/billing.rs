//! Monthly invoices from metered usage, and the payment-provider interface.
//!
//! An invoice for a tenant and month has one line per model and agent,
//! summed from the daily rollups (which equal the sum of the raw records);
//! its total is the sum of its lines. Regenerating an open invoice replaces
//! it; a paid invoice is final. Payment goes through a [`PaymentProvider`];
//! [`TestPaymentProvider`] records charges in memory and makes no external
//! call; only tests wire it in (`Application::build_with_payments`): a
//! server started from configuration has no provider and refuses payment.
//!
//! Must not: know a real payment provider's API.

use agentry_types::InvoiceStatus;
use std::sync::Arc;

use agentry_db::billing::{InvoiceLineRow, InvoiceRow};
use async_trait::async_trait;
use chrono::{Datelike, Months, NaiveDate};
use parking_lot::Mutex;
use serde::Serialize;

use super::{Accounting, Error, nusd_to_usd};
use crate::TenantAccess;
use crate::identity::now_ms;

/// Charges an invoice's total somewhere.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Charge `amount_nusd` for an invoice; returns the provider's payment reference.
    async fn charge(&self, tenant_id: &str, invoice_id: &str, amount_nusd: i64) -> Result<String, String>;
}

/// A provider for tests and development: accepts every charge and remembers it.
#[derive(Default)]
pub struct TestPaymentProvider {
    charges: Mutex<Vec<(String, String, i64)>>,
}

impl TestPaymentProvider {
    /// Charges so far: (tenant, invoice, amount in nano-USD).
    pub fn charges(&self) -> Vec<(String, String, i64)> {
        self.charges.lock().clone()
    }
}

#[async_trait]
impl PaymentProvider for TestPaymentProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn charge(&self, tenant_id: &str, invoice_id: &str, amount_nusd: i64) -> Result<String, String> {
        let mut charges = self.charges.lock();
        charges.push((tenant_id.to_owned(), invoice_id.to_owned(), amount_nusd));
        Ok(format!("test_pay_{}", charges.len()))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    pub model: String,
    /// '' for direct gateway use.
    pub agent: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub amount_usd: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: String,
    pub tenant_id: String,
    pub period: String,
    pub status: InvoiceStatus,
    pub currency: &'static str,
    pub total_usd: f64,
    /// The exact total in nano-USD (1e-9 USD).
    pub total_nusd: i64,
    pub created_at_ms: i64,
    pub paid_at_ms: Option<i64>,
    pub payment_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<InvoiceLine>,
}

fn invoice(row: InvoiceRow, lines: Vec<InvoiceLineRow>) -> Invoice {
    Invoice {
        id: row.id,
        tenant_id: row.tenant_id,
        period: row.period,
        status: row.status,
        currency: "USD",
        total_usd: nusd_to_usd(row.total_nusd),
        total_nusd: row.total_nusd,
        created_at_ms: row.created_at_ms,
        paid_at_ms: row.paid_at_ms,
        payment_ref: row.payment_ref,
        lines: lines
            .into_iter()
            .map(|l| InvoiceLine {
                model: l.model,
                agent: l.agent,
                requests: l.requests,
                input_tokens: l.input_tokens,
                output_tokens: l.output_tokens,
                amount_usd: nusd_to_usd(l.amount_nusd),
            })
            .collect(),
    }
}

/// The first day of a `YYYY-MM` month.
fn month_start(period: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").map_err(|_| Error::invalid(format!("'period' must be a month as YYYY-MM, got '{period}'"), "period"))
}

impl Accounting {
    /// Build (or rebuild, while open) the invoice of a month from metered usage.
    pub async fn generate_invoice(&self, access: &TenantAccess, period: &str) -> Result<Invoice, Error> {
        let start = month_start(period)?;
        if start > super::budgets::today() {
            return Err(Error::invalid("cannot invoice a month that has not started", "period"));
        }
        let last = start + Months::new(1) - chrono::Days::new(1);
        let db = self.policies().db();
        let usage = db.usage_by_model_and_agent(access.tenant_id(), &start.to_string(), &last.to_string()).await?;
        let lines: Vec<InvoiceLineRow> = usage
            .into_iter()
            .enumerate()
            .map(|(i, u)| InvoiceLineRow {
                line_no: i as i32 + 1,
                model: u.model,
                agent: u.agent,
                requests: u.requests,
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                amount_nusd: u.cost_nusd,
            })
            .collect();
        let row = InvoiceRow {
            id: format!("inv_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: access.tenant_id().to_owned(),
            period: format!("{:04}-{:02}", start.year(), start.month()),
            status: InvoiceStatus::Open,
            total_nusd: lines.iter().map(|l| l.amount_nusd).sum(),
            created_at_ms: now_ms(),
            paid_at_ms: None,
            payment_ref: None,
        };
        db.replace_invoice(&row, &lines).await.map_err(|e| match e {
            agentry_db::DbError::Conflict { .. } => Error::Conflict(format!("the invoice for {period} is paid and cannot change")),
            other => other.into(),
        })?;
        Ok(invoice(row, lines))
    }

    pub async fn invoices(&self, access: &TenantAccess) -> Result<Vec<Invoice>, Error> {
        Ok(self.policies().db().invoices_of_tenant(access.tenant_id()).await?.into_iter().map(|r| invoice(r, Vec::new())).collect())
    }

    pub async fn invoice(&self, access: &TenantAccess, id: &str) -> Result<Invoice, Error> {
        match self.policies().db().invoice(access.tenant_id(), id).await? {
            Some((row, lines)) => Ok(invoice(row, lines)),
            None => Err(Error::NotFound(format!("invoice '{id}'"))),
        }
    }

    /// Charge an open invoice through the payment provider and mark it paid.
    /// Without a provider (a server that configures none) paying is refused:
    /// nothing may mark an invoice paid that no one charged.
    pub async fn pay_invoice(&self, access: &TenantAccess, id: &str, provider: Option<&Arc<dyn PaymentProvider>>) -> Result<Invoice, Error> {
        let current = self.invoice(access, id).await?;
        let Some(provider) = provider else {
            return Err(Error::Conflict("no payment provider is configured on this server: invoices are settled outside Agentry".into()));
        };
        if current.status != InvoiceStatus::Open {
            return Err(Error::Conflict(format!("invoice '{id}' is already {}", current.status)));
        }
        let reference =
            provider.charge(access.tenant_id(), id, current.total_nusd).await.map_err(|e| Error::Unavailable(format!("payment provider '{}' refused: {e}", provider.name())))?;
        if !self.policies().db().mark_invoice_paid(access.tenant_id(), id, now_ms(), &reference).await? {
            return Err(Error::Conflict(format!("invoice '{id}' changed while it was being paid")));
        }
        self.invoice(access, id).await
    }

    /// An invoice as CSV: one row per line, then the total.
    pub fn invoice_csv(invoice: &Invoice) -> Result<String, Error> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let fail = super::analytics::csv_error;
        out.write_record(["invoice", "period", "model", "agent", "requests", "input_tokens", "output_tokens", "amount_usd"]).map_err(fail)?;
        for l in &invoice.lines {
            let row = [
                invoice.id.clone(),
                invoice.period.clone(),
                l.model.clone(),
                l.agent.clone(),
                l.requests.to_string(),
                l.input_tokens.to_string(),
                l.output_tokens.to_string(),
                format!("{:.9}", l.amount_usd),
            ];
            out.write_record(&row).map_err(fail)?;
        }
        let total = [invoice.id.clone(), invoice.period.clone(), "TOTAL".into(), String::new(), String::new(), String::new(), String::new(), format!("{:.9}", invoice.total_usd)];
        out.write_record(&total).map_err(fail)?;
        super::analytics::into_string(out)
    }

    /// An invoice as a standalone HTML page (values escaped).
    pub fn invoice_html(invoice: &Invoice) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
        let mut rows = String::new();
        for l in &invoice.lines {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>${:.6}</td></tr>\n",
                esc(&l.model),
                esc(if l.agent.is_empty() { "gateway" } else { &l.agent }),
                l.requests,
                l.input_tokens,
                l.output_tokens,
                l.amount_usd
            ));
        }
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Invoice {id}</title></head><body>\n\
             <h1>Invoice {id}</h1>\n<p>Tenant {tenant} &middot; period {period} &middot; status {status}</p>\n\
             <table border=\"1\" cellpadding=\"4\"><tr><th>Model</th><th>Agent</th><th>Requests</th><th>Input tokens</th><th>Output tokens</th><th>Amount</th></tr>\n\
             {rows}<tr><th colspan=\"5\">Total (USD)</th><th>${total:.6}</th></tr></table>\n</body></html>\n",
            id = esc(&invoice.id),
            tenant = esc(&invoice.tenant_id),
            period = esc(&invoice.period),
            status = esc(invoice.status.as_str()),
            total = invoice.total_usd,
        )
    }
}
