//! Markdown to HTML for runbooks, postmortems and the lab report, safe to put on the
//! console: raw HTML is shown as text, and a link or image whose URL is not http(s), mailto
//! or relative loses its URL (a `javascript:` link in a document someone wrote to the corpus
//! — a postmortem draft carries an alert's name — would otherwise run with the reader's
//! session).

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

/// Whether a link target may stay: a scheme-less (relative) URL or a known-safe scheme.
fn safe_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon after a `/`, `?` or `#` is part of a relative path, not a scheme.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

fn defuse(url: CowStr<'_>) -> CowStr<'_> {
    if safe_url(&url) {
        url
    } else {
        CowStr::Borrowed("#unsafe-link-removed")
    }
}

pub fn to_html(text: &str) -> String {
    let parser = Parser::new_ext(text, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: defuse(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: defuse(dest_url),
            title,
            id,
        }),
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

    #[test]
    fn only_web_mail_and_relative_links_keep_their_url() {
        let out = to_html(
            "[a](javascript:alert(1)) <JavaScript:alert(2)> ![i](data:text/html,x) \
             [b](https://runbooks.example/oom) [c](/console/docs/x) [d](notes:today) [e](mailto:sre@example.com)",
        );
        let lower = out.to_ascii_lowercase();
        assert!(!lower.contains("href=\"javascript"), "{out}");
        assert!(!lower.contains("src=\"data:"), "{out}");
        assert!(
            !out.contains("href=\"notes:"),
            "an unknown scheme is removed too: {out}"
        );
        for kept in [
            "https://runbooks.example/oom",
            "/console/docs/x",
            "mailto:sre@example.com",
        ] {
            assert!(out.contains(kept), "{kept} in {out}");
        }
    }
}
