//! HTML through scraper (html5ever, the browsers' parsing algorithm, so
//! broken markup reads the way a browser shows it). Script, style,
//! noscript, template, svg and the whole `<head>` are skipped; the title is
//! `<title>`, else the first h1; sections split at h1–h6 with heading paths
//! as in Markdown; block elements become line breaks, table cells are
//! separated by ` | `, and whitespace collapses except inside `<pre>`.
//!
//! The tree is walked with an explicit open/close traversal, not
//! recursion, so deeply nested markup cannot overflow the stack.
//!
//! Text goes through the budgeted [`Outline`], checked at every node.
//!
//! Must not: fetch linked resources or run scripts.

use scraper::Html;
use scraper::node::Node;

use super::budget::Budget;
use super::{Outline, ParseError, Parsed, collapse_whitespace};

const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object"];

const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
];

pub(super) fn parse(text: &str, budget: Budget) -> Result<Parsed, ParseError> {
    let document = Html::parse_document(text);
    let mut outline = Outline::new(budget);
    let mut skipping: Option<ego_tree::NodeId> = None;
    let mut heading: Option<(ego_tree::NodeId, u8, String)> = None;
    let mut pre_depth = 0usize;
    for edge in document.tree.root().traverse() {
        outline.check()?;
        match edge {
            ego_tree::iter::Edge::Open(node) => {
                if skipping.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(element) => {
                        let name = element.name();
                        if SKIPPED.contains(&name) {
                            skipping = Some(node.id());
                        } else if let Some(level) = heading_level(name) {
                            if heading.is_none() {
                                heading = Some((node.id(), level, String::new()));
                            }
                        } else if name == "br" {
                            outline.newline();
                        } else if name == "li" {
                            outline.newline();
                            outline.push_str("- ");
                        } else if BLOCKS.contains(&name) {
                            outline.newline();
                            pre_depth += usize::from(name == "pre");
                        }
                    }
                    Node::Text(text) => match heading.as_mut() {
                        Some((_, _, buffer)) => buffer.push_str(text),
                        None if pre_depth > 0 => outline.push_str(text),
                        None => outline.push_inline(text),
                    },
                    _ => {}
                }
            }
            ego_tree::iter::Edge::Close(node) => {
                if skipping == Some(node.id()) {
                    skipping = None;
                    continue;
                }
                if skipping.is_some() {
                    continue;
                }
                let Node::Element(element) = node.value() else { continue };
                let name = element.name();
                if heading.as_ref().is_some_and(|(id, _, _)| *id == node.id()) {
                    if let Some((_, level, text)) = heading.take() {
                        outline.heading(level, &text);
                    }
                } else if name == "td" || name == "th" {
                    outline.push_str(" | ");
                } else if matches!(name, "p" | "pre" | "blockquote" | "table" | "ul" | "ol") {
                    pre_depth -= usize::from(name == "pre" && pre_depth > 0);
                    outline.paragraph_break();
                } else if BLOCKS.contains(&name) {
                    outline.newline();
                }
            }
        }
    }
    outline.finish(title(&document))
}

/// The text of the first `<title>` element, whitespace collapsed.
fn title(document: &Html) -> Option<String> {
    let node = document.tree.nodes().find(|n| n.value().as_element().is_some_and(|e| e.name() == "title"))?;
    let text: String = node.descendants().filter_map(|n| n.value().as_text().map(|t| t.to_string())).collect();
    Some(collapse_whitespace(&text)).filter(|t| !t.is_empty())
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse};

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>  The   Page </title><style>body { color: red }</style><script>var x = "hidden";</script></head>
<body>
  <nav>Home</nav>
  <h1>Main <em>title</em></h1>
  <p>First   paragraph with <b>bold</b> <i>words</i>.</p>
  <noscript>enable js</noscript>
  <h2>Details</h2>
  <ul><li>one</li><li>two</li></ul>
  <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
  <pre>let  x =
    1;</pre>
  <h3>Deep</h3><div>deep text<br>next line</div>
  <h2>Other</h2><p>other text</p>
  <template><p>template text</p></template>
</body></html>"#;

    #[test]
    fn html_sections_follow_headings_and_skip_non_content() -> Result<(), ParseError> {
        let parsed = parse(PAGE.as_bytes(), Format::Html)?;
        assert_eq!(parsed.title.as_deref(), Some("The Page"));
        let paths: Vec<String> = parsed.sections.iter().map(|s| s.heading_path.join(" > ")).collect();
        assert_eq!(paths, ["", "Main title", "Main title > Details", "Main title > Details > Deep", "Main title > Other"]);
        assert_eq!(parsed.sections[0].text, "Home");
        assert_eq!(parsed.sections[1].text, "First paragraph with bold words.");
        assert_eq!(parsed.sections[2].text, "- one\n- two\n\nk | v |\na | 1 |\n\nlet  x =\n1;");
        assert_eq!(parsed.sections[3].text, "deep text\nnext line");
        assert_eq!(parsed.sections[4].text, "other text");
        let all: String = parsed.sections.iter().map(|s| s.text.as_str()).collect();
        for hidden in ["hidden", "color", "enable js", "template text"] {
            assert!(!all.contains(hidden), "{hidden} leaked into {all:?}");
        }
        Ok(())
    }

    #[test]
    fn title_falls_back_to_the_first_h1_and_fragments_parse() -> Result<(), ParseError> {
        let parsed = parse(b"<div><h1>Heading</h1>text <span>here</span></div>", Format::Html)?;
        assert_eq!(parsed.title.as_deref(), Some("Heading"));
        assert_eq!(parsed.sections[0].text, "text here");
        let nested = "<div>".repeat(5_000) + "deep" + &"</div>".repeat(5_000);
        assert_eq!(parse(nested.as_bytes(), Format::Html)?.sections[0].text, "deep");
        Ok(())
    }
}
