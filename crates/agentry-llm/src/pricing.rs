//! Prices per 1K tokens and the cost of a call. Owns the built-in price table;
//! must not know where usage is stored.

use agentry_types::Usage;
use serde::{Deserialize, Serialize};

/// USD per 1,000 input and output tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

impl Price {
    pub const FREE: Self = Self { input_per_1k: 0.0, output_per_1k: 0.0 };

    /// Cost of a call with this usage in nano-USD (1e-9 USD), rounded:
    /// integers keep sums of many calls exact.
    pub fn cost_nusd(&self, usage: &Usage) -> i64 {
        ((f64::from(usage.prompt_tokens) * self.input_per_1k + f64::from(usage.completion_tokens) * self.output_per_1k) * 1e6).round() as i64
    }
}

/// Built-in prices for well-known upstream model ids, used when a configured
/// model sets no price of its own.
pub fn builtin_price(upstream_model: &str) -> Option<Price> {
    let (input_per_1k, output_per_1k) = match upstream_model {
        "gpt-4o" => (0.005, 0.015),
        "gpt-4o-mini" => (0.00015, 0.0006),
        "gpt-4o-vision" => (0.01, 0.03),
        _ => return None,
    };
    Some(Price { input_per_1k, output_per_1k })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_both_prices() {
        let price = builtin_price("gpt-4o").unwrap();
        assert_eq!(price.cost_nusd(&Usage::new(1000, 2000)), 35_000_000);
        let mini = builtin_price("gpt-4o-mini").unwrap();
        assert_eq!(mini.cost_nusd(&Usage::new(1, 1)), 750);
    }
}
