//! Markdown (CommonMark with tables, task lists, strikethrough and
//! footnotes) through pulldown-cmark: sections split at headings, the title
//! is the first h1. Paragraph, list-item and code-block text is kept (code
//! line by line, list items as `- ` / `1. ` lines, table cells separated by
//! ` | `); markup, raw HTML and YAML front matter are dropped.
//!
//! Text goes through the budgeted [`Outline`], checked after every event
//! (a table row pads itself to the header's width, so cells can outnumber
//! the input's bytes).
//!
//! Must not: render HTML or resolve links.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::budget::Budget;
use super::{Outline, ParseError, Parsed};

pub(super) fn parse(text: &str, budget: Budget) -> Result<Parsed, ParseError> {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut outline = Outline::new(budget);
    let mut heading: Option<(u8, String)> = None;
    // One counter per open list: `Some(n)` numbers the next item, `None` bullets it.
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut in_metadata = false;
    for event in Parser::new_ext(text, options) {
        outline.check()?;
        match event {
            Event::Start(Tag::Heading { level, .. }) => heading = Some((level_number(level), String::new())),
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text)) = heading.take() {
                    outline.heading(level, &text);
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Text(text) | Event::Code(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                if in_metadata {
                    continue;
                }
                match heading.as_mut() {
                    Some((_, buffer)) => buffer.push_str(&text),
                    None => outline.push_str(&text),
                }
            }
            Event::SoftBreak => match heading.as_mut() {
                Some((_, buffer)) => buffer.push(' '),
                None => outline.push_str(" "),
            },
            Event::HardBreak | Event::Rule => outline.newline(),
            Event::TaskListMarker(done) => outline.push_str(if done { "[x] " } else { "[ ] " }),
            Event::Start(Tag::List(start)) => {
                outline.newline();
                lists.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                lists.pop();
                outline.paragraph_break();
            }
            Event::Start(Tag::Item) => {
                outline.newline();
                match lists.last_mut() {
                    Some(Some(n)) => {
                        outline.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => outline.push_str("- "),
                }
            }
            Event::End(TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead) => outline.newline(),
            Event::End(TagEnd::TableCell) => outline.push_str(" | "),
            Event::Start(Tag::CodeBlock(_)) => outline.paragraph_break(),
            Event::End(TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::Table) => {
                outline.paragraph_break();
            }
            _ => {}
        }
    }
    outline.finish(None)
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse};

    const DOC: &str = "---\nauthor: someone\n---\n\n# Guide\n\nIntro with *emphasis* and `code`.\n\n## Install\n\n\
        - first step\n- second [link](http://x)\n\n1. one\n2. two\n\n```sh\ncargo  build\n```\n\n### Linux\n\nUse apt.\n\n\
        ## Use\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<div>raw html</div>\n";

    #[test]
    fn markdown_sections_follow_the_heading_chain() -> Result<(), ParseError> {
        let parsed = parse(DOC.as_bytes(), Format::Markdown)?;
        assert_eq!(parsed.title.as_deref(), Some("Guide"));
        let paths: Vec<String> = parsed.sections.iter().map(|s| s.heading_path.join(" > ")).collect();
        assert_eq!(paths, ["Guide", "Guide > Install", "Guide > Install > Linux", "Guide > Use"]);
        assert_eq!(parsed.sections[0].text, "Intro with emphasis and code.");
        assert_eq!(parsed.sections[1].text, "- first step\n- second link\n\n1. one\n2. two\n\ncargo  build");
        assert_eq!(parsed.sections[2].text, "Use apt.");
        assert!(parsed.sections[3].text.contains("1 | 2"), "{:?}", parsed.sections[3].text);
        assert!(!parsed.sections.iter().any(|s| s.text.contains("raw html") || s.text.contains("author")));
        Ok(())
    }

    #[test]
    fn headings_only_keep_their_text() -> Result<(), ParseError> {
        let parsed = parse(b"# Only\n## Headings", Format::Markdown)?;
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(parsed.sections[0].text, "Only\nHeadings");
        Ok(())
    }
}
