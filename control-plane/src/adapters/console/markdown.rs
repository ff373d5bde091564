//! Markdown to HTML for runbooks, postmortems and the lab report, with raw HTML shown as
//! text: a document someone wrote to the corpus cannot put a script on the console.

use pulldown_cmark::{html, Event, Options, Parser};

pub fn to_html(text: &str) -> String {
    let parser = Parser::new_ext(text, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_raw_html_is_text() {
        let out = to_html("| a |\n|---|\n| 1 |\n\n<script>alert(1)</script>\n");
        assert!(out.contains("<table>"), "{out}");
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }
}
