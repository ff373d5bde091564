//! `cargo xtask setup`: everything a fresh machine lacks, installed idempotently, each step
//! saying what it does. See `../shared/notes/ebpf-toolchain.md` for why bpf-linker is linked
//! against the nightly's own libLLVM.

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{bail, Context as _};

use crate::process::{cargo_bin_dir, cargo_home, done, run as run_command, step};

/// Debian packages the tests and the demo use, as (command that proves it, package).
/// `/bin/true` is copied by the outage test as an exec marker.
/// (command that proves it is installed, package). The topology tests, the fault lab and
/// the overhead benchmark run real nginx, redis, PostgreSQL, wrk, dnsmasq, nftables and
/// iptables (NFQUEUE); the export tests scrape with a real Prometheus.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("true", "coreutils"),
    ("ip", "iproute2"),
    ("nginx", "nginx-light"),
    ("redis-server", "redis-server"),
    ("wrk", "wrk"),
    ("dnsmasq", "dnsmasq-base"),
    ("nft", "nftables"),
    ("iptables", "iptables"),
    ("pg_ctlcluster", "postgresql"),
    ("setpriv", "util-linux"),
    ("prometheus", "prometheus"),
    // The console's browser test and benchmark: headless Chromium through WebDriver.
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
];

fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            command,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    nightly()?;
    bpf_linker()?;
    nextest()?;
    cargo_fuzz()?;
    debian_packages()?;
    python_packages()?;
    kernel_checks();
    println!("    setup done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The eBPF toolchain alone (container image builds).
pub fn toolchain() -> anyhow::Result<()> {
    nightly()?;
    bpf_linker()
}

fn nightly() -> anyhow::Result<()> {
    step("Rust nightly with rust-src (builds core for bpfel-unknown-none)");
    if !have("rustup") {
        bail!("rustup is not installed: install it from rustup.rs, then rerun `cargo xtask setup`");
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        done("installing the nightly toolchain");
        run_command(
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
            "installing nightly",
        )?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if components.lines().any(|l| l.starts_with("rust-src")) {
        done("already installed");
    } else {
        done("adding rust-src");
        run_command(
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
            "adding rust-src",
        )?;
    }
    Ok(())
}

/// The nightly's LLVM: its version line and its libLLVM shared object.
fn nightly_llvm() -> anyhow::Result<(String, PathBuf)> {
    let version = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` printed no LLVM version")?
        .trim()
        .to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = PathBuf::from(sysroot.trim()).join("lib");
    let so = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.* in {}: the nightly toolchain is incomplete",
                lib.display()
            )
        })?;
    Ok((llvm, so))
}

fn bpf_linker() -> anyhow::Result<()> {
    step("bpf-linker linked against the nightly's LLVM");
    let (llvm, so) = nightly_llvm()?;
    let major = llvm.split('.').next().unwrap_or_default().to_string();
    let prefix = cargo_home().join("vigil-llvm");
    let stamp = prefix.join("stamp");
    let linker = cargo_bin_dir().join("bpf-linker");
    let wanted = format!("llvm {llvm} from {}", so.display());
    let works = Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        done(&format!("already installed ({wanted})"));
        return Ok(());
    }
    done(&format!(
        "building bpf-linker for LLVM {major} (about a minute)"
    ));
    let lib_dir = prefix.join("lib");
    std::fs::create_dir_all(&lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
    // `libLLVM.so` is what bpf-linker's build links against; the versioned name (the
    // SONAME) is what the loader looks for through bpf-linker's RUNPATH at run time.
    let soname = so.file_name().context("libLLVM path has no file name")?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname] {
        let link = lib_dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&so, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    run_command(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--force",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}"))
            .arg("--root")
            .arg(cargo_home())
            .env("LLVM_PREFIX", &prefix),
        "installing bpf-linker",
    )?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    done(&format!("installed {}", linker.display()));
    Ok(())
}

/// A cargo subcommand installed with `cargo install`, unless `cargo <probe…>` already works.
fn cargo_tool(what: &str, probe: &[&str], krate: &str) -> anyhow::Result<()> {
    step(what);
    if Command::new("cargo")
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        done("already installed");
        return Ok(());
    }
    done(&format!("installing {krate}"));
    run_command(
        Command::new("cargo").args(["install", krate, "--locked"]),
        &format!("installing {krate}"),
    )
}

/// cargo-fuzz, for the libFuzzer targets in `fuzz/` (`cargo xtask fuzz`, and briefly in
/// `cargo xtask test`).
pub fn cargo_fuzz() -> anyhow::Result<()> {
    cargo_tool(
        "cargo-fuzz",
        &["+nightly", "fuzz", "--version"],
        "cargo-fuzz",
    )
}

fn nextest() -> anyhow::Result<()> {
    cargo_tool("cargo-nextest", &["nextest", "--version"], "cargo-nextest")
}

fn debian_packages() -> anyhow::Result<()> {
    step("Debian packages for tests and demo");
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        done("already installed");
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("missing Debian packages {missing:?}: run `cargo xtask setup` as root, or `apt-get install {}`", missing.join(" "));
    }
    done(&format!("apt-get install {}", missing.join(" ")));
    run_command(
        Command::new("apt-get").arg("update").arg("-qq"),
        "apt-get update",
    )?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
        "apt-get install",
    )
}

/// PyPI wheels the tests use: `pgserver` bundles PostgreSQL 16 with pgvector (Debian's
/// PostgreSQL has no pgvector package), for the pgvector retrieval tests.
const PYTHON_PACKAGES: &[(&str, &str)] = &[("pgserver", "pgserver==0.1.4")];

fn python_packages() -> anyhow::Result<()> {
    step("Python wheels for tests");
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(module, _)| {
            !Command::new("python3")
                // Found, not imported: the tests use its files, not its Python API.
                .args([
                    "-c",
                    &format!("import importlib.util, sys; sys.exit(importlib.util.find_spec('{module}') is None)"),
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        done("already installed");
        return Ok(());
    }
    done(&format!("pip install {}", missing.join(" ")));
    run_command(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--break-system-packages",
            ])
            .args(&missing),
        "pip install",
    )
}

/// Not fatal: building works anywhere; running the agent needs these.
fn kernel_checks() {
    step("kernel and privileges (needed to run the agent and the privileged tests)");
    let checks = [
        (
            std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
            "BTF at /sys/kernel/btf/vmlinux",
        ),
        (
            nix::unistd::geteuid().is_root(),
            "running as root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN to mount tracefs)",
        ),
        (
            std::path::Path::new("/sys/fs/cgroup/memory").exists(),
            "cgroup-v1 memory hierarchy (the OOM test makes a memcg there)",
        ),
    ];
    for (ok, what) in checks {
        println!("    {} {what}", if ok { "ok     " } else { "MISSING" });
    }
}
