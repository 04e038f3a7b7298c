//! How much one GraphQL request may ask for. The body is at most
//! [`MAX_BODY`]; async-graphql enforces depth, complexity and directives
//! itself. Complexity is the bound on work: a field that reads storage
//! counts [`super::types::LOOKUP`], a list its page size times its items,
//! and repeats (aliases, fragments spread again) count every time. It has
//! no alias limit, so [`AliasLimit`] counts the aliases of a parsed
//! document (written here: a walk over the parser's types, nothing to
//! choose from on crates.io) to refuse lookup-by-many-names documents early
//! and plainly. A refused field is decided and audited once per request
//! (`Caller::reach`), however often it is repeated.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Deepest nesting of fields (`runs { nodes { toolCalls { tool } } }` is 4).
pub const MAX_DEPTH: usize = 8;
/// Most complexity: about 400 storage reads.
pub const MAX_COMPLEXITY: usize = 40_000;
/// Largest request body (or query string), in bytes.
pub const MAX_BODY: usize = 32 * 1024;
/// Most directives on one field.
pub const MAX_DIRECTIVES: usize = 8;
/// Most aliased fields in one document.
pub const MAX_ALIASES: usize = 30;

/// Refuses documents with more than [`MAX_ALIASES`] aliases.
pub struct AliasLimit;

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimit)
    }
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(&self, ctx: &ExtensionContext<'_>, query: &str, variables: &Variables, next: NextParseQuery<'_>) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let operations = document.operations.iter().map(|(_, op)| aliases(&op.node.selection_set.node));
        let fragments = document.fragments.values().map(|fragment| aliases(&fragment.node.selection_set.node));
        let count: usize = operations.chain(fragments).sum();
        if count > MAX_ALIASES {
            return Err(ServerError::new(format!("the query has {count} aliases; at most {MAX_ALIASES} are allowed"), None));
        }
        Ok(document)
    }
}

fn aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()) + aliases(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    /// The messages of a query's refusal before any field runs (none: it passed the limits).
    async fn refusals(query: &str) -> Vec<String> {
        let answer = super::super::schema().execute(query).await;
        answer.errors.into_iter().filter(|e| e.path.is_empty()).map(|e| e.message).collect()
    }

    #[tokio::test]
    async fn a_page_counts_its_size_times_its_items() {
        assert_eq!(refusals("{ threads(limit: 20) { nodes { runs(limit: 20) { nodes { id } } } } }").await, Vec::<String>::new());
        assert_eq!(refusals("{ threads(limit: 200) { nodes { runs(limit: 200) { nodes { id } } } } }").await, ["Query is too complex."]);
        // Repeats count every time, however they are written.
        let usage: String = (0..100).map(|n| format!("u{n}: usage {{ groupBy }} ")).collect();
        let spreads = "...F ".repeat(250);
        assert_eq!(refusals(&format!("fragment F on Query {{ tenant {{ slug }} agents(limit: 1) {{ nodes {{ name }} }} }} {{ {spreads} }}")).await, ["Query is too complex."]);
        assert_eq!(refusals(&format!("{{ {usage} }}")).await, ["the query has 100 aliases; at most 30 are allowed"]);
    }
}
