//! A real browser for the console's tests and benchmark: Debian's headless Chromium driven
//! through chromedriver (WebDriver on a loopback port), with a blocking face over fantoccini
//! so tests read top to bottom like the other end-to-end tests.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// chromedriver, started on a free port and killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
    _profiles: tempfile::TempDir,
    profiles: PathBuf,
    sessions: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Driver {
    /// Fails (never skips) when chromedriver or Chromium is missing: `cargo xtask setup`
    /// installs Debian's `chromium` and `chromium-driver`.
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver did not start ({e}): run `cargo xtask setup`, which installs Debian's chromium and chromium-driver")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver never listened on {url}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profiles = tempfile::tempdir().expect("profile dir");
        Self {
            child,
            url,
            profiles: profiles.path().to_path_buf(),
            _profiles: profiles,
            sessions: 0,
        }
    }

    /// A new browser window with its own profile (its own cookies).
    pub fn browser(&mut self) -> Browser {
        self.sessions += 1;
        let profile = self.profiles.join(format!("p{}", self.sessions));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new",
                    // Root has no user namespace sandbox here.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&self.url),
            )
            .unwrap_or_else(|e| panic!("Chromium did not start under chromedriver: {e}"));
        Browser { rt, client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    pub client: Client,
}

impl Browser {
    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client.goto(url))
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client.current_url())
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Runs `script` in the page (its `return` value back as JSON).
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.client.execute(script, vec![]))
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Runs an async script: `arguments[0]` is the callback its result goes to.
    pub fn js_async(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.client.execute_async(script, vec![]))
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// How many elements match `css` now.
    pub fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.client.find_all(Locator::Css(css)))
            .map(|v| v.len())
            .unwrap_or_else(|e| panic!("finding `{css}` on {}: {e}", self.url()))
    }

    /// Retries `f` while the element it uses is replaced under it (a live region re-rendered
    /// between finding and using it).
    fn retrying<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, fantoccini::error::CmdError>,
    ) -> T {
        let mut last = None;
        for _ in 0..20 {
            match f() {
                Ok(v) => return v,
                Err(e) => {
                    last = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("{what}: {}", last.unwrap_or_default())
    }

    /// The text of the first element matching `css`, if any.
    pub fn text(&self, css: &str) -> Option<String> {
        if self.count(css) == 0 {
            return None;
        }
        Some(self.retrying(&format!("reading `{css}`"), || {
            self.rt.block_on(async {
                let e = self.client.find(Locator::Css(css)).await?;
                e.text().await
            })
        }))
    }

    /// Waits until `css` matches, polling without reloading the page.
    pub fn wait(&self, css: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count(css) == 0 {
            assert!(
                Instant::now() < deadline,
                "`{css}` never appeared on {} within {within:?}; the page shows:\n{}",
                self.url(),
                self.text("main").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn click(&self, css: &str) {
        self.retrying(&format!("clicking `{css}`"), || {
            self.rt.block_on(async {
                let e = self.client.find(Locator::Css(css)).await?;
                e.click().await
            })
        })
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.retrying(&format!("typing into `{css}`"), || {
            self.rt.block_on(async {
                let e = self.client.find(Locator::Css(css)).await?;
                e.send_keys(text).await
            })
        })
    }

    /// Accepts the page's `confirm()` dialog.
    pub fn accept_dialog(&self) {
        self.rt
            .block_on(self.client.accept_alert())
            .unwrap_or_else(|e| panic!("accepting the dialog: {e}"));
    }

    /// Signs in at `base`'s console with `token`, and waits for the incidents page.
    pub fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/console"));
        assert!(
            self.url().contains("/console/login"),
            "an anonymous visit goes to the sign-in, not {}",
            self.url()
        );
        self.type_into("#token", token.trim());
        self.click("main.login button[type=submit]");
        self.wait("table.incidents", Duration::from_secs(10));
    }

    /// A PNG of the whole page (the window grown to its height, up to 4,000 px), written to
    /// `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let height = self
            .js("window.scrollTo(0, 0); return Math.min(document.documentElement.scrollHeight, 4000);")
            .as_u64()
            .unwrap_or(1000)
            .max(1000);
        let _ = self
            .rt
            .block_on(self.client.set_window_size(1400, height as u32));
        let png = self
            .rt
            .block_on(self.client.screenshot())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let _ = self.rt.block_on(self.client.set_window_size(1400, 1000));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.rt.block_on(client.close());
    }
}
