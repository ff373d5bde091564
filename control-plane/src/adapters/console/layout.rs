//! The page shell: head with the embedded assets, the navigation, who is signed in.

use maud::{html, Markup, DOCTYPE};

use crate::domain::access::Principal;

/// The navigation's sections: (path, label).
const SECTIONS: [(&str, &str); 4] = [
    ("/console", "Incidents"),
    ("/console/graph", "Service graph"),
    ("/console/nodes", "Nodes"),
    ("/console/lab", "Fault lab"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href=(super::assets::path("console.css"));
            link rel="stylesheet" href=(super::assets::path("uplot.min.css"));
            script src=(super::assets::path("htmx.min.js")) defer {}
            script src=(super::assets::path("uplot.min.js")) defer {}
            script src=(super::assets::path("console.js")) defer {}
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { (body) }
        }
    }
}

/// A console page: `section` is the navigation entry it belongs to.
pub fn page(title: &str, section: &str, who: &Principal, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("Vigil: {title}")))
            body {
                header.top {
                    a.brand href="/console" { "Vigil" }
                    nav {
                        @for (path, label) in SECTIONS {
                            a.current[path == section] href=(path) { (label) }
                        }
                    }
                    div.who {
                        span #who data-role=(who.role.as_str()) { (who.name) " · " (who.role.as_str()) }
                        form method="post" action="/console/logout" {
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                div #flash role="status" {}
                main { (body) }
            }
        }
    }
}

/// A time as `<time>`: UTC text, with the unix milliseconds the page's script turns into an
/// age ("3 min ago") in the reader's clock. The text itself never changes, so a live region
/// is re-sent only when its content did.
pub fn time(unix_ns: i64) -> Markup {
    let ms = unix_ns / 1_000_000;
    html! { time datetime=(iso(unix_ns)) data-ms=(ms) { (clock(unix_ns)) } }
}

/// `2026-12-07 19:05:03` (UTC).
pub fn clock(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| unix_ns.to_string())
}

fn iso(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A duration between two instants, as an operator reads it: `850 ms`, `4.2 s`, `3 min`.
pub fn span(ns: i64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else if ms < 3_600_000.0 {
        format!("{:.0} min", ms / 60e3)
    } else {
        format!("{:.1} h", ms / 3_600e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_the_unit_an_operator_expects() {
        assert_eq!(span(850_000_000), "850 ms");
        assert_eq!(span(4_200_000_000), "4.2 s");
        assert_eq!(span(180_000_000_000), "3 min");
        assert_eq!(clock(0), "1970-01-01 00:00:00");
    }
}
