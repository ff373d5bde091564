//! A live region as a page shows it: its HTML, the version it carries, and the stream that
//! replaces it (see `live`); and the renderings tabs share.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
    time::{Duration, Instant},
};

use maud::{html, Markup};

use super::PageError;

/// Renderings kept for other tabs: younger than this are reused.
const REUSE: Duration = Duration::from_millis(900);
/// Renderings nobody asked for in this long are dropped.
const FORGET: Duration = Duration::from_secs(120);

/// A region's identity for the stream: a hash of its HTML, in hex.
pub fn version(markup: &Markup) -> String {
    let mut h = DefaultHasher::new();
    markup.0.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A live region: `body` now, replaced by what `stream_url` pushes.
pub fn region(id: &str, stream_url: &str, body: Markup) -> Markup {
    let v = version(&body);
    let sep = if stream_url.contains('?') { '&' } else { '?' };
    html! {
        div.live id=(id) data-live={ (stream_url) (sep) "since=" (v) } data-version=(v) {
            (body)
        }
    }
}

/// The latest rendering of each region, shared by every tab that shows it.
#[derive(Default)]
pub struct Renders(Mutex<HashMap<String, (Instant, Markup)>>);

impl Renders {
    pub fn get_or_render(
        &self,
        key: &str,
        render: impl FnOnce() -> Result<Markup, PageError>,
    ) -> Result<Markup, PageError> {
        let fresh = |t: &Instant| t.elapsed() < REUSE;
        if let Some((at, m)) = self.lock().get(key) {
            if fresh(at) {
                return Ok(m.clone());
            }
        }
        let markup = render()?;
        let mut map = self.lock();
        // Regions nobody watches any more go with the next insertion.
        map.retain(|_, (at, _)| at.elapsed() < FORGET);
        map.insert(key.to_string(), (Instant::now(), markup.clone()));
        Ok(markup)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Markup)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_within_a_tick_share_one_rendering_and_a_later_one_renders_again() {
        let renders = Renders::default();
        let calls = std::cell::Cell::new(0);
        let render = || {
            calls.set(calls.get() + 1);
            Ok(html! { p { (calls.get()) } })
        };
        let first = renders.get_or_render("incidents", render).expect("render");
        let second = renders.get_or_render("incidents", render).expect("reuse");
        assert_eq!(
            (calls.get(), first.0, second.0.clone()),
            (1, "<p>1</p>".to_string(), "<p>1</p>".to_string())
        );
        renders
            .get_or_render("nodes", render)
            .expect("another region");
        assert_eq!(calls.get(), 2, "each region renders for itself");
        if let Some(entry) = renders.lock().get_mut("incidents") {
            entry.0 -= REUSE;
        }
        renders.get_or_render("incidents", render).expect("stale");
        assert_eq!(calls.get(), 3, "older than a tick: rendered again");
    }
}
