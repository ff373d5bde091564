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
