//! The `netwarden` command line: parse arguments, call the library, choose
//! the exit code. Exit codes: 0 success, 1 invalid policy (or failed policy
//! tests), 2 bad arguments.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use netwarden::engine::client::parse_ip;
use netwarden::engine::trace::{Recorder, Report};
use netwarden::engine::{ClientSource, RequestFacts, decide_traced};
use netwarden::policy::{self, LoadError};
use netwarden::proxy::{self, Overrides};
use netwarden::telemetry::{self, LogFormat};

/// mimalloc rather than glibc's malloc: after a burst of connections it
/// gives the freed memory back to the system (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "netwarden",
    version,
    about = "A network-aware login guard for admin consoles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy and run its tests; list every problem as file:line:col.
    Check(CheckArgs),
    /// Decide one request and show how: client address, each rule considered.
    Explain(ExplainArgs),
    /// Run the guard proxy in front of a console.
    Serve(ServeArgs),
    /// Decide logged requests again with a candidate policy; show what changes.
    /// Exit 0: nothing changes; 1: something does; 2: error.
    Replay(ReplayArgs),
    /// Compare two policies' decisions for every request, not their text:
    /// what an edit opens or closes (exit 0 same, 3 narrower, 4 wider).
    Diff(DiffArgs),
    /// Send a test alert to every sink in the policy's alerts section and
    /// report each outcome. Exit 0: every sink took it; 1: some did not;
    /// 2: no sinks, or a sink cannot be set up.
    AlertTest(AlertTestArgs),
    /// Development TLS certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Probe a running netwarden's admin /healthz (for container health checks).
    Health {
        /// The admin listener.
        #[arg(long, env = "NETWARDEN_ADMIN", default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Probe /readyz instead.
        #[arg(long)]
        ready: bool,
    },
    /// Start netwarden in front of a small built-in console on loopback and
    /// show what it does (nothing to set up).
    Demo(DemoArgs),
    /// Write every page netwarden answers itself, in each language the
    /// policy offers, as HTML files (to look at, or to screenshot).
    Pages(PagesArgs),
    /// Print the hash that logs and alerts show for an account name (the
    /// running guard's normalization and key, from the variable the policy
    /// names), to find which account a lockout alert means.
    AccountHash {
        /// The policy file (its lockout.account_key_env).
        #[arg(long, env = "NETWARDEN_POLICY")]
        policy: PathBuf,
        /// The account name, as people sign in with it.
        name: String,
    },
    /// List the lockouts in force (GET /lockouts on the admin listener; with
    /// Redis, every replica's).
    Lockouts(AdminArgs),
    /// What happened in decision logs, as a person wants it: blocked
    /// sign-ins by network, country, AS and hour, lockouts, refusals before
    /// any rule, expired grants, reloads. Files (.gz read as gzip) or stdin.
    Report {
        /// Log files; none or `-`: stdin.
        logs: Vec<String>,
        /// text, markdown (for a ticket) or json.
        #[arg(long, default_value = "text", value_parser = ["text", "markdown", "json"])]
        format: String,
        /// The language: ja or en (default: from LANG).
        #[arg(long, value_parser = ["ja", "en"])]
        lang: Option<String>,
    },
    /// Grants for a travelling operator, written into a network's file.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// One page on a running guard: its policy and last reload, readiness,
    /// the lockout store, grants ending soon, lockouts, recent blocked
    /// sign-ins.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// text (for people) or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// The language of the text: ja or en (default: from LANG).
        #[arg(long, value_parser = ["ja", "en"])]
        lang: Option<String>,
        /// Recent blocked sign-ins shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Release lockouts (POST /lockouts/release): by account name, account
    /// hash, client address or network. Exit 0: released (or none was in
    /// force); 1: refused or unreachable.
    Release {
        #[command(flatten)]
        admin: AdminArgs,
        /// An account, by name (hashed by the guard, never logged).
        #[arg(long, group = "what")]
        account: Option<String>,
        /// An account, by the hash the logs show.
        #[arg(long, group = "what")]
        account_hash: Option<String>,
        /// A client address.
        #[arg(long, group = "what")]
        address: Option<String>,
        /// A network (CIDR): every lock of an address or network in it.
        #[arg(long, group = "what")]
        network: Option<String>,
    },
}

#[derive(Subcommand)]
enum GrantCommand {
    /// Add a grant with until: (and a note) to the file a network reads,
    /// check the policy, and reload the running guard. The policy stays the
    /// record: the grant is a line of its network's file.
    Add {
        #[command(flatten)]
        admin: AdminArgs,
        /// The network (it must take addresses from a file:).
        #[arg(long)]
        network: String,
        /// The address or CIDR granted.
        #[arg(long)]
        cidr: String,
        /// When it ends, with its offset: 2026-12-10 18:00 +09:00.
        #[arg(long)]
        until: String,
        /// Who and why, for the log and `explain`.
        #[arg(long)]
        note: Option<String>,
        /// Write and check only; the guard's watcher (or you) reloads.
        #[arg(long)]
        no_reload: bool,
    },
}

/// How to reach a running guard's admin listener: the address and the
/// token's variable from the policy, as `serve` uses them.
#[derive(Args)]
struct AdminArgs {
    /// The policy file (server.admin and server.admin_auth.token_env).
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
    /// The admin listener, instead of the policy's (http://host:port or host:port).
    #[arg(long)]
    admin: Option<String>,
}

#[derive(Args)]
struct PagesArgs {
    /// The policy file (its pages: section and templates).
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
    /// Directory to write <page>.<lang>.html into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    /// The policy file (its server: section gives defaults for the flags below).
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
    /// Plain HTTP listener address; repeat for more. Replaces server.listen.
    #[arg(long, env = "NETWARDEN_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// HTTPS listener address; repeat for more. Replaces server.tls_listen.
    #[arg(long, env = "NETWARDEN_TLS_LISTEN", value_delimiter = ',')]
    tls_listen: Vec<SocketAddr>,
    /// Expect a PROXY protocol header on the listeners given by flags.
    #[arg(long, env = "NETWARDEN_PROXY_PROTOCOL")]
    proxy_protocol: bool,
    /// Certificate chain (PEM) for TLS listeners.
    #[arg(long, env = "NETWARDEN_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for TLS listeners.
    #[arg(long, env = "NETWARDEN_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// The console: http://host:port, https://host:port or h2c://host:port (HTTP/2 without TLS).
    #[arg(long, env = "NETWARDEN_UPSTREAM")]
    upstream: Option<String>,
    /// CA certificates (PEM) trusted for an https upstream (default: the system's).
    #[arg(long, env = "NETWARDEN_UPSTREAM_CA")]
    upstream_ca: Option<PathBuf>,
    /// Admin listener (/healthz, /readyz); default 127.0.0.1:9901.
    #[arg(long, env = "NETWARDEN_ADMIN")]
    admin: Option<SocketAddr>,
    /// Log format: json lines (default) or text for people.
    #[arg(long, env = "NETWARDEN_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Worker threads (default: one per CPU).
    #[arg(long, env = "NETWARDEN_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

#[derive(Args)]
struct AlertTestArgs {
    /// The policy file.
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
    /// Only this sink (by name).
    #[arg(long)]
    sink: Option<String>,
}

#[derive(Args)]
struct ReplayArgs {
    /// The candidate policy.
    #[arg(long)]
    policy: PathBuf,
    /// The running policy, to decide again instead of trusting the logged decisions.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// JSON decision logs written by serve: files, `.gz` files, or `-` for stdin.
    #[arg(required = true)]
    logs: Vec<String>,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The policy before the edit (or use --git).
    #[arg(required_unless_present = "git")]
    old: Option<PathBuf>,
    /// The policy after the edit.
    new: Option<PathBuf>,
    /// Compare the working copy of the policy with its version at this
    /// git revision (`OLD` is then the working copy's path).
    #[arg(long, value_name = "REV")]
    git: Option<String>,
    /// `text`, `markdown` (for a pull request) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "markdown", "json"])]
    format: String,
    /// Compare at this instant instead of now (RFC 3339 with an offset).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA and a server certificate signed by it.
    Dev {
        /// Directory to write ca.pem, cert.pem and key.pem into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Names and addresses the certificate is for.
        #[arg(long = "name", default_values = ["localhost", "127.0.0.1", "::1"])]
        names: Vec<String>,
    },
}

#[derive(Args)]
struct DemoArgs {
    /// Only print the engine's decisions on sample requests, without starting anything.
    #[arg(long)]
    offline: bool,
    /// Address the demo proxy listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

#[derive(Args)]
struct CheckArgs {
    /// The policy file.
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
}

#[derive(Args)]
struct ExplainArgs {
    /// The policy file.
    #[arg(long, env = "NETWARDEN_POLICY")]
    policy: PathBuf,
    /// The client address itself.
    #[arg(long, conflicts_with = "peer", required_unless_present = "peer")]
    ip: Option<String>,
    /// The TCP peer (a proxy in front), with --header to say who the client is.
    #[arg(long)]
    peer: Option<String>,
    /// A request header, 'Name: value'; repeat for more lines.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "peer")]
    headers: Vec<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path, optionally with a query (which never affects the decision).
    #[arg(long, default_value = "/")]
    path: String,
    /// Host header.
    #[arg(long)]
    host: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Decide at this instant instead of now (RFC 3339 with an offset,
    /// such as 2026-12-24T18:00:00+09:00): grants' and rules' `until:`
    /// and rules' `when:` windows are read against it.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The account the sign-in names, for rules with `accounts:` (compared
    /// as they compare it: case, width and invisible characters folded).
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// A verified identity's e-mail, for rules with `who:` (with --group
    /// and --claim: the identity the auth layer in front vouched for).
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// A group of the verified identity; repeat for more.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A claim of the verified identity, `key=value`; repeat for more.
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    claims: Vec<String>,
}

fn main() -> ExitCode {
    netwarden::proxy::memory::tune();
    let cli = Cli::parse();
    if let Err(e) = netwarden::clock::init() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Explain(args) => explain(&args),
        Command::Serve(args) => serve(args),
        Command::Replay(args) => replay(&args),
        Command::Diff(args) => diff(&args),
        Command::AlertTest(args) => alert_test(&args),
        Command::Certs(CertsCommand::Dev { out, names }) => certs_dev(&out, &names),
        Command::Health { admin, ready } => health(admin, ready),
        Command::Demo(args) if args.offline => match netwarden::demo::offline() {
            Ok(report) => {
                out(&report);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(report_load_error(&e)),
        },
        Command::Demo(args) => demo(args.listen),
        Command::Pages(args) => pages(&args),
        Command::AccountHash { policy, name } => account_hash(&policy, &name),
        // The guard refused or could not be reached: 1, as cli.md says
        // (2 is for a command line that names nothing to do).
        Command::Lockouts(admin) => lockouts(&admin).or_else(unreachable),
        Command::Report { logs, format, lang } => report(&logs, &format, lang.as_deref()),
        Command::Grant(GrantCommand::Add {
            admin,
            network,
            cidr,
            until,
            note,
            no_reload,
        }) => grant_add(&admin, &network, &cidr, &until, note.as_deref(), no_reload),
        Command::Status {
            admin,
            format,
            lang,
            limit,
        } => status(&admin, &format, lang.as_deref(), limit).or_else(unreachable),
        Command::Release {
            admin,
            account,
            account_hash,
            address,
            network,
        } => match (account, account_hash, address, network) {
            (Some(v), _, _, _) => {
                release(&admin, &serde_json::json!({ "account": v })).or_else(unreachable)
            }
            (_, Some(v), _, _) => {
                release(&admin, &serde_json::json!({ "account_hash": v })).or_else(unreachable)
            }
            (_, _, Some(v), _) => {
                release(&admin, &serde_json::json!({ "address": v })).or_else(unreachable)
            }
            (_, _, _, Some(v)) => {
                release(&admin, &serde_json::json!({ "network": v })).or_else(unreachable)
            }
            _ => {
                eprintln!(
                    "netwarden release: name what to release: --account, --account-hash, --address or --network"
                );
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netwarden: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A command that talks to the running guard and could not: said, exit 1.
fn unreachable(e: anyhow::Error) -> anyhow::Result<ExitCode> {
    eprintln!("netwarden: {e:#}");
    Ok(ExitCode::from(1))
}

/// Text from the admin listener, safe to print on a terminal: control
/// characters (escape sequences, line breaks) written as escapes.
fn shown(text: &str) -> String {
    netwarden::ops::printable(text)
}

/// Writes to stdout; a closed pipe (`netwarden explain … | head`) is not an
/// error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Prints a load failure's diagnostics; the exit code for an invalid policy.
/// `netwarden diff`: exit 0 when nobody gains or loses access, 3 when
/// only narrower, 4 when wider; 1 for a policy that does not load, 2 for
/// bad arguments (as `check` and the parser).
fn diff(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.at {
        Some(t) => {
            netwarden::engine::time::parse_instant(t).map_err(|e| anyhow::anyhow!("--at: {e}"))?
        }
        None => netwarden::clock::now(),
    };
    // With --git: the revision's whole tree in a temporary directory, so
    // that the old policy's own files (network lists) are its own too.
    let mut _tree = None;
    let (old_path, new_path) = match (&args.git, &args.old, &args.new) {
        (Some(rev), Some(path), None) => {
            let (dir, old) = git_version(rev, path)?;
            _tree = Some(dir);
            (old, path.clone())
        }
        (None, Some(old), Some(new)) => (old.clone(), new.clone()),
        (Some(_), _, _) => bail!("with --git, give one policy: the working copy's path"),
        (None, _, _) => bail!("give two policies (OLD NEW), or one with --git REV"),
    };
    let load = |p: &PathBuf| policy::load(p);
    let old = match load(&old_path) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    let new = match load(&new_path) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    let report = netwarden::diff::diff(&old.policy, &new.policy, now);
    let (a, b) = match &args.git {
        Some(rev) => (
            format!("{}@{rev}", new_path.display()),
            new_path.display().to_string(),
        ),
        None => (
            old_path.display().to_string(),
            new_path.display().to_string(),
        ),
    };
    let text = match args.format.as_str() {
        "json" => format!("{}\n", netwarden::diff::render::json(&report)),
        "markdown" => netwarden::diff::render::markdown(&report, &a, &b),
        _ => netwarden::diff::render::text(&report, &a, &b),
    };
    out(&text);
    Ok(ExitCode::from(match report.verdict() {
        netwarden::diff::Verdict::Same => 0,
        netwarden::diff::Verdict::Narrower => 3,
        netwarden::diff::Verdict::Wider => 4,
    }))
}

/// `path` as it is at git revision `rev`: the revision's tree unpacked in
/// a temporary directory, and the policy's path in it.
fn git_version(rev: &str, path: &std::path::Path) -> anyhow::Result<(tempfile_dir::Dir, PathBuf)> {
    let abs = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let dir = abs.parent().context("the policy has no directory")?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .context("cannot run git")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let rel = abs
        .strip_prefix(std::fs::canonicalize(&top)?)
        .context("the policy is not inside the git work tree")?
        .to_path_buf();
    git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])?;
    let tmp = tempfile_dir::Dir::new()?;
    let archive = std::process::Command::new("git")
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", rev])
        .output()
        .context("cannot run git archive")?;
    if !archive.status.success() {
        bail!(
            "git archive {rev}: {}",
            String::from_utf8_lossy(&archive.stderr).trim()
        );
    }
    let mut tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(tmp.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    {
        use std::io::Write as _;
        let mut stdin = tar.stdin.take().context("tar's input")?;
        stdin.write_all(&archive.stdout)?;
    }
    if !tar.wait()?.success() {
        bail!("cannot unpack revision {rev}");
    }
    let old = tmp.path().join(&rel);
    if !old.exists() {
        bail!("{} does not exist at {rev}", rel.display());
    }
    Ok((tmp, old))
}

/// A temporary directory removed when dropped (std has none).
mod tempfile_dir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            let mut bytes = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let path = std::env::temp_dir().join(format!("netwarden-diff-{name}"));
            std::fs::create_dir(&path)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn report_load_error(e: &LoadError) -> ExitCode {
    match e {
        LoadError::Invalid { diagnostics, .. } => {
            for d in diagnostics {
                eprintln!("{d}\n");
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = diagnostics.len() - errors;
            eprintln!("{e}, {warnings} warning(s)");
        }
        other => eprintln!("netwarden: {other}"),
    }
    ExitCode::from(1)
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = match policy::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    for w in &loaded.warnings {
        eprintln!("{w}\n");
    }
    let p = &loaded.policy;
    out(&format!(
        "{}: ok: {} network(s), {} rule(s), {} test(s) passed, {} warning(s)\n",
        args.policy.display(),
        p.networks().len(),
        p.rules().len(),
        loaded.tests_passed,
        loaded.warnings.len()
    ));
    print_feeds(p);
    print_accounts(p);
    print_identity(p);
    Ok(ExitCode::SUCCESS)
}

/// Where identities come from, and the rules that decide by them.
fn print_identity(p: &policy::Policy) {
    use policy::identity::Source;
    let Some(settings) = p.identity() else {
        return;
    };
    let source = match &settings.source {
        Source::Jwt(j) => format!(
            "signed tokens ({}) in {}, keys from {}",
            j.preset.as_str(),
            j.header,
            netwarden::feeds::shown_url(j.keys.url())
        ),
        Source::Headers(h) => format!(
            "headers of a trusted proxy ({}{}{})",
            h.user,
            h.email.as_ref().map_or(String::new(), |e| format!(", {e}")),
            h.groups
                .as_ref()
                .map_or(String::new(), |g| format!(", {g}"))
        ),
    };
    out(&format!("identity: {source}\n"));
    let rules: Vec<String> = p
        .rules()
        .iter()
        .filter(|r| r.who.is_some())
        .map(|r| format!("'{}'", r.name))
        .collect();
    if !rules.is_empty() {
        out(&format!(
            "rules deciding by identity: {}: a client without an identity, or with one not believed, is refused by them (403), never passed to a later rule\n",
            rules.join(", ")
        ));
    }
}

/// The groups of accounts and the rules that decide by them, and what
/// such a rule does with a sign-in it cannot read the account of.
fn print_accounts(p: &policy::Policy) {
    let groups = p.ruleset().account_groups();
    if groups.is_empty() {
        return;
    }
    let list: Vec<String> = groups
        .iter()
        .map(|g| format!("{} ({} pattern(s))", g.name, g.patterns.len()))
        .collect();
    let rules: Vec<String> = p
        .rules()
        .iter()
        .filter(|r| r.accounts.is_some())
        .map(|r| format!("'{}'", r.name))
        .collect();
    out(&format!(
        "accounts: {} group(s): {}\n",
        groups.len(),
        list.join(", ")
    ));
    if !rules.is_empty() {
        out(&format!(
            "rules deciding by the account: {}: a sign-in whose account cannot be read (missing, ambiguous, oversized, slow, unparseable) is refused with 400, never passed to a later rule\n",
            rules.join(", ")
        ));
    }
}

/// Which list each feed holds, from where, and how old: `check` and
/// `explain` work without a network, and say what they decided with.
fn print_feeds(p: &policy::Policy) {
    let now = netwarden::clock::now();
    for f in p.feeds() {
        out(&format!("{}\n", policy::feeds::describe(f, now)));
    }
    for n in p.dns_names() {
        out(&format!("{}\n", policy::dns::describe(n, now)));
    }
}

fn parse_addr(flag: &str, text: &str) -> anyhow::Result<IpAddr> {
    match parse_ip(text.as_bytes()) {
        Some(ip) => Ok(ip),
        None => bail!("{flag} '{text}' is not an IP address in canonical form"),
    }
}

fn explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let mut headers = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("--header '{h}' is not of the form 'Name: value'"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let client = match (&args.ip, &args.peer) {
        (Some(ip), _) => ClientSource::Given(parse_addr("--ip", ip)?),
        (None, Some(peer)) => ClientSource::Peer {
            peer: parse_addr("--peer", peer)?,
            headers: &headers,
        },
        (None, None) => bail!("give --ip or --peer"),
    };
    let loaded = match policy::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    // Host as the proxy finds it: `--header 'Host: …'` lines, and
    // `--host` as the request target's authority; they must agree.
    let host_lines = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_bytes());
    let now = match &args.at {
        Some(t) => {
            netwarden::engine::time::parse_instant(t).map_err(|e| anyhow::anyhow!("--at: {e}"))?
        }
        None => netwarden::clock::now(),
    };
    let folded = args
        .account
        .as_deref()
        .map(netwarden::engine::account::fold);
    let mut claims = Vec::with_capacity(args.claims.len());
    for c in &args.claims {
        let (k, v) = c
            .split_once('=')
            .with_context(|| format!("--claim '{c}' is not of the form 'key=value'"))?;
        claims.push((k.trim().into(), vec![v.trim().into()]));
    }
    let identity =
        (args.email.is_some() || !args.groups.is_empty() || !claims.is_empty()).then(|| {
            netwarden::engine::who::Identity {
                subject: "explain".into(),
                email: args
                    .email
                    .as_deref()
                    .map(netwarden::engine::who::fold_email),
                groups: args.groups.iter().map(|g| g.as_str().into()).collect(),
                claims,
            }
        });
    let facts = RequestFacts {
        client,
        method: &args.method,
        host: netwarden::engine::request::resolve_host(false, host_lines, args.host.as_deref()),
        path: &args.path,
        now,
        account: folded
            .as_deref()
            .map_or(netwarden::engine::AccountFact::Unread, |a| {
                netwarden::engine::AccountFact::Named(a)
            }),
        identity: identity.as_ref().map_or(
            netwarden::engine::who::IdentityFact::Missing,
            netwarden::engine::who::IdentityFact::Verified,
        ),
    };
    let mut trace = Recorder::default();
    let decision = decide_traced(loaded.policy.ruleset(), &facts, &mut trace);
    let report = Report {
        policy: loaded.policy.ruleset(),
        decision: &decision,
        trace: &trace,
        now,
    };
    if args.json {
        let mut v = report.to_json();
        if !loaded.policy.feeds().is_empty() {
            v["feeds"] = loaded
                .policy
                .feeds()
                .iter()
                .map(|f| policy::feeds::to_json(f, now))
                .collect();
        }
        if !loaded.policy.dns_names().is_empty() {
            v["dns_names"] = loaded
                .policy
                .dns_names()
                .iter()
                .map(|n| policy::dns::to_json(n, now))
                .collect();
        }
        out(&format!("{v}\n"));
    } else {
        out(&report.to_string());
        print_feeds(&loaded.policy);
    }
    Ok(ExitCode::SUCCESS)
}

/// The main thread's runtime: accept loops, the admin listener, signals.
/// Requests run on the proxy's worker threads (see `proxy::serve`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let _logs = telemetry::init(args.log_format);
    let rt = runtime()?;
    // Published lists with no last good copy yet are fetched before the
    // first compile; one that cannot be fetched leaves the policy
    // unloadable, and startup fails closed below, saying why.
    for (network, why) in rt.block_on(netwarden::feeds::prime(&args.policy)) {
        eprintln!(
            "netwarden: network '{network}': its published list or DNS name could not be fetched: {why}\n"
        );
    }
    let loaded = match policy::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    for w in &loaded.warnings {
        eprintln!("{w}\n");
    }
    // A snapshot stands in for check and tests; serving needs a list the
    // publisher gave (fail closed, as with no list at all).
    let snapshots: Vec<&str> = loaded
        .policy
        .feeds()
        .iter()
        .filter(|f| f.used.origin == policy::feeds::Origin::Snapshot)
        .map(|f| f.network.as_str())
        .chain(
            loaded
                .policy
                .dns_names()
                .iter()
                .filter(|n| n.used.origin == policy::feeds::Origin::Snapshot)
                .map(|n| n.network.as_str()),
        )
        .collect();
    if !snapshots.is_empty() {
        eprintln!(
            "netwarden: network(s) {} would serve from their snapshot: or dns_snapshot: files: a snapshot is for check, explain and tests; serve needs a list fetched from the publisher or a name resolved (or its last good copy in feeds.state_dir)",
            snapshots.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let overrides = Overrides {
        listen: args.listen,
        tls_listen: args.tls_listen,
        proxy_protocol: args.proxy_protocol,
        cert: args.cert,
        key: args.key,
        upstream: args.upstream,
        upstream_ca: args.upstream_ca,
        admin: args.admin,
        alert_env: Vec::new(),
        workers: args.workers.map(usize::from),
        prebound: Vec::new(),
    };
    match rt.block_on(proxy::serve(loaded.policy, overrides)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(event = "startup_failed", detail = %e, "netwarden cannot start");
            eprintln!("netwarden: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn alert_test(args: &AlertTestArgs) -> anyhow::Result<ExitCode> {
    use netwarden::alerts::deliver::{Try, resolve_all};
    let loaded = match policy::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    let Some(settings) = loaded.policy.alerts() else {
        bail!(
            "{} has no alerts section; see docs/alerts.md",
            args.policy.display()
        );
    };
    let mut settings = settings.clone();
    if let Some(name) = &args.sink {
        settings.sinks.retain(|s| &s.name == name);
        if settings.sinks.is_empty() {
            bail!("no sink named '{name}' in {}", args.policy.display());
        }
    }
    if settings.sinks.is_empty() {
        bail!(
            "the alerts section of {} names no sinks",
            args.policy.display()
        );
    }
    let sinks = match resolve_all(&settings, &|v| std::env::var(v).ok()) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("netwarden: {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let outcomes = runtime()?.block_on(netwarden::alerts::test(&sinks));
    let mut failed = 0;
    for o in &outcomes {
        let ms = o.took.as_millis();
        let line = match o.result {
            Try::Delivered(answer) => {
                format!("{} ({}): delivered, {answer} in {ms} ms", o.sink, o.kind)
            }
            Try::Rejected(answer) => {
                failed += 1;
                format!(
                    "{} ({}): refused, {answer}: check the sink's address and secrets",
                    o.sink, o.kind
                )
            }
            Try::Retry {
                status: Some(answer),
                ..
            } => {
                failed += 1;
                format!(
                    "{} ({}): failed, {answer} (serve would retry)",
                    o.sink, o.kind
                )
            }
            Try::Retry { why, .. } => {
                failed += 1;
                format!(
                    "{} ({}): failed: {why} after {ms} ms (serve would retry)",
                    o.sink, o.kind
                )
            }
        };
        out(&format!("{line}\n"));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `netwarden pages`: each page in each offered language, as a browser gets
/// it (a sample address and request id stand in for the request's).
fn pages(args: &PagesArgs) -> anyhow::Result<ExitCode> {
    let loaded = match policy::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return Ok(report_load_error(&e)),
    };
    let written = netwarden::proxy::pages::preview(&loaded.policy, &args.out)
        .with_context(|| format!("cannot write into {}", args.out.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn certs_dev(out: &std::path::Path, names: &[String]) -> anyhow::Result<ExitCode> {
    let files = netwarden::tls::dev_certificates(out, names)?;
    println!(
        "wrote {} (CA), {} (certificate for {}), {} (key, mode 0600)\n\
         serve with: --tls-listen 127.0.0.1:8443 --cert {} --key {}\n\
         trust it with: curl --cacert {} https://localhost:8443/",
        files.ca.display(),
        files.cert.display(),
        names.join(", "),
        files.key.display(),
        files.cert.display(),
        files.key.display(),
        files.ca.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn demo(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let _logs = telemetry::init(LogFormat::Json);
    match runtime()?.block_on(netwarden::demo::live(listen)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Cannot start: exit 1, as serve (docs/cli.md).
        Err(e) => {
            eprintln!("netwarden: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `netwarden account-hash`: the 12 hex digits logs and alerts show.
fn account_hash(policy_path: &std::path::Path, name: &str) -> anyhow::Result<ExitCode> {
    let loaded = policy::load(policy_path)?;
    let Some(var) = loaded
        .policy
        .lockout()
        .and_then(|l| l.account_key_env.clone())
    else {
        eprintln!(
            "netwarden account-hash: the policy names no lockout.account_key_env: the guard hashes with a random key of its own, which no other process has"
        );
        return Ok(ExitCode::from(1));
    };
    let Ok(value) = std::env::var(&var) else {
        eprintln!("netwarden account-hash: {var} is not set here: set it to the guard's key");
        return Ok(ExitCode::from(1));
    };
    let accounts = netwarden::lockout::Accounts::new(Some((&var, Some(&value))))
        .map_err(anyhow::Error::msg)?;
    println!("{}", netwarden::lockout::account_tag(&accounts.id(name)));
    Ok(ExitCode::SUCCESS)
}

/// One request to a running guard's admin listener, found as the policy
/// says (or `--admin`), with its bearer token when the policy names one.
fn admin_call(
    args: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let loaded = policy::load(&args.policy)?;
    let server = loaded.policy.server();
    let addr: SocketAddr = match &args.admin {
        Some(a) => a
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|_| anyhow::anyhow!("--admin {a}: give host:port, e.g. 127.0.0.1:9901"))?,
        None => server.admin.unwrap_or_else(|| {
            netwarden::policy::server::defaults::ADMIN
                .parse()
                .expect("the default admin address parses")
        }),
    };
    let auth = match &server.admin_auth {
        Some(a) => {
            let token = std::env::var(&a.token_env).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not set: the admin listener wants its token",
                    a.token_env
                )
            })?;
            format!("Authorization: Bearer {token}\r\n")
        }
        None => String::new(),
    };
    let body = body.map(ToString::to_string).unwrap_or_default();
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| anyhow::anyhow!("cannot reach the admin listener at {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.take(16 * 1024 * 1024).read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{addr}: not an HTTP answer"))?;
    let text = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, text))
}

/// `netwarden grant add`: the line, written atomically, kept only if the
/// policy still checks; then a reload.
fn grant_add(
    args: &AdminArgs,
    network: &str,
    cidr: &str,
    until: &str,
    note: Option<&str>,
    no_reload: bool,
) -> anyhow::Result<ExitCode> {
    // One writer at a time, from reading the policy to its check (red-team
    // reviews of issue 24: six grant adds at once all said "added" and two
    // grants were kept; a refused one put back a copy without the others';
    // a policy read while another's refused grant was in place refused a
    // good one): an exclusive flock(2) on a file beside the policy, which
    // is never written (std's File::lock is newer than this crate's MSRV).
    let lock_path = args.policy.with_file_name(format!(
        ".{}.grant.lock",
        args.policy
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy")
    ));
    let writer = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    // SAFETY: a valid descriptor this function owns for the call; the lock
    // goes with it when `writer` is dropped.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&writer), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot lock {}", lock_path.display()));
    }
    let loaded = policy::load(&args.policy)?;
    if !loaded.policy.networks().iter().any(|n| n.name == network) {
        let names: Vec<&str> = loaded
            .policy
            .networks()
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        eprintln!(
            "netwarden grant add: the policy has no network '{}' (its networks: {})",
            shown(network),
            names.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let Some(file) = loaded
        .policy
        .network_file(network)
        .map(std::path::Path::to_path_buf)
    else {
        eprintln!(
            "netwarden grant add: network '{network}' reads no file: give it one (file: networks/{network}-grants.txt, an empty file) and grants go there; the policy stays the record"
        );
        return Ok(ExitCode::from(1));
    };
    let until = match netwarden::engine::time::strict_instant(until) {
        Ok(u) => u,
        Err(why) => {
            eprintln!("netwarden grant add: --until {why}");
            return Ok(ExitCode::from(1));
        }
    };
    let ends = netwarden::engine::time::parse_instant(&until).map_err(anyhow::Error::msg)?;
    if ends <= netwarden::clock::now() {
        eprintln!(
            "netwarden grant add: --until {until} has passed: a grant that ends before it starts grants nothing"
        );
        return Ok(ExitCode::from(1));
    }
    let cidr = cidr.trim();
    if cidr.is_empty() || cidr.contains(char::is_whitespace) || cidr.contains('#') {
        eprintln!("netwarden grant add: --cidr must be one address or CIDR");
        return Ok(ExitCode::from(1));
    }
    let note = note.map(str::trim).unwrap_or_default();
    if note.chars().any(char::is_control) {
        eprintln!("netwarden grant add: --note must be one line");
        return Ok(ExitCode::from(1));
    }
    // What the logs escape (bidi controls, line separators) has no place
    // in the record either, nor a note longer than a line (red-team
    // review of issue 24).
    if note.chars().any(netwarden::telemetry::json::hidden) || note.chars().count() > 200 {
        eprintln!(
            "netwarden grant add: --note must be plain text of at most 200 characters (no bidirectional controls or line separators)"
        );
        return Ok(ExitCode::from(1));
    }
    // A grant wide enough to open the console to much of the internet is
    // not a trip's: refused (red-team review of issue 24: 0.0.0.0/0 passed).
    let net: ipnet::IpNet = match cidr.parse::<ipnet::IpNet>() {
        Ok(n) => n,
        Err(_) => match cidr.parse::<std::net::IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip),
            Err(_) => {
                eprintln!("netwarden grant add: --cidr '{cidr}' is not an address or CIDR");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let widest = match net {
        ipnet::IpNet::V4(_) => 24,
        ipnet::IpNet::V6(_) => 48,
    };
    if net.prefix_len() < widest {
        eprintln!(
            "netwarden grant add: --cidr {cidr} is wider than a /{widest}: a grant is for a person's address (or a hotel's /24); write wide ranges into the network with a review"
        );
        return Ok(ExitCode::from(1));
    }
    if ends > netwarden::clock::now() + jiff::SignedDuration::from_hours(24 * 31) {
        eprintln!(
            "netwarden grant add: --until {until} is more than 31 days ahead: a grant ends by itself; an address for longer belongs in the network, with a review"
        );
        return Ok(ExitCode::from(1));
    }
    // A linked network file: written where the link points, so that the
    // link stays and the real file changes.
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let before = std::fs::read_to_string(&file)?;
    let mut after = before.clone();
    if !after.is_empty() && !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(&format!("{cidr}  until={until}"));
    if !note.is_empty() {
        after.push_str(&format!("  # {note}"));
    }
    after.push('\n');
    // Write and rename: the guard's watcher never reads half a file. The
    // temporary file is created new (never through a link someone left
    // with a name they guessed), beside the file, with its mode.
    let mode = std::fs::metadata(&file)?.permissions();
    let write = |text: &str| -> std::io::Result<()> {
        use std::io::Write;
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("grants");
        let mut nonce = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| std::io::Error::other("no random bytes"))?;
        let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.{hex}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, mode.clone())?;
        std::fs::rename(&tmp, &file)
    };
    write(&after)?;
    match policy::load(&args.policy) {
        Ok(_) => {}
        Err(e) => {
            write(&before)?;
            eprintln!(
                "netwarden grant add: the policy would not check with it; the file is as it was:\n{e}"
            );
            return Ok(ExitCode::from(1));
        }
    }
    drop(writer);
    println!(
        "{}: {cidr} until {until} added to network '{network}'",
        file.display()
    );
    if no_reload {
        return Ok(ExitCode::SUCCESS);
    }
    match admin_call(args, "POST", "/reload", None) {
        Ok((200, body)) => {
            println!("reloaded: {}", body.trim());
            Ok(ExitCode::SUCCESS)
        }
        Ok((code, body)) => {
            eprintln!(
                "netwarden grant add: the guard did not reload ({code}): {}",
                body.trim()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!(
                "netwarden grant add: written and checked, but the guard could not be asked to reload ({e}); its watcher picks the file up, or POST /reload"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The operator's language: `--lang`, else `LANG`.
fn operator_lang(lang: Option<&str>) -> netwarden::policy::pages::Lang {
    use netwarden::policy::pages::Lang;
    match lang {
        Some("ja") => Lang::Ja,
        Some(_) => Lang::En,
        None => match std::env::var("LANG") {
            Ok(l) if l.starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        },
    }
}

/// `netwarden report`.
fn report(logs: &[String], format: &str, lang: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, IsTerminal};
    let lang = operator_lang(lang);
    let logs = if logs.is_empty() {
        vec!["-".to_string()]
    } else {
        logs.to_vec()
    };
    let progress = std::io::stderr().is_terminal();
    let mut r = netwarden::ops::report::Report::default();
    for log in &logs {
        let mut input =
            netwarden::replay::open(log).with_context(|| format!("cannot read {log}"))?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = input
                .read_line(&mut line)
                .with_context(|| format!("cannot read {log}"))?;
            if n == 0 {
                break;
            }
            r.feed(&line);
            if progress && r.lines % 200_000 == 0 {
                eprint!("\r{log}: {} lines", r.lines);
            }
        }
    }
    if progress && r.lines >= 200_000 {
        eprintln!();
    }
    match format {
        "json" => out(&netwarden::ops::printable_json(&format!(
            "{}\n",
            r.to_json()
        ))),
        "markdown" => out(&netwarden::ops::printable_page(&r.render(lang, true))),
        _ => out(&netwarden::ops::printable_page(&r.render(lang, false))),
    }
    Ok(ExitCode::SUCCESS)
}

/// `netwarden status`.
fn status(
    args: &AdminArgs,
    format: &str,
    lang: Option<&str>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let lang = operator_lang(lang);
    let get = |path: &str| admin_call(args, "GET", path, None);
    let (code, policy) = get("/policy")?;
    if code != 200 {
        eprintln!(
            "netwarden status: /policy: {code}: {}",
            shown(policy.trim())
        );
        return Ok(ExitCode::from(1));
    }
    let ready = get("/readyz")?;
    let lockouts = match get("/lockouts")? {
        (200, body) => Ok(serde_json::from_str(&body)?),
        (code, body) => Err(format!("{code}: {}", body.trim())),
    };
    let (_, blocked) = get(&format!("/events/blocked?limit={limit}"))?;
    // Grants and rules of the policy file ending within 7 days.
    let loaded = policy::load(&args.policy)?;
    let now = netwarden::clock::now();
    let soon = now + jiff::SignedDuration::from_hours(24 * 7);
    let mut ending: Vec<(String, String, Option<String>)> = loaded
        .policy
        .ruleset()
        .expiring()
        .filter(|e| e.until() > now && e.until() <= soon)
        .map(|e| match e {
            netwarden::engine::ruleset::Expiring::Grant { network, grant } => (
                format!("grant {} in {network}", grant.net),
                e.until().to_string(),
                grant.note.as_deref().map(str::to_string),
            ),
            netwarden::engine::ruleset::Expiring::Rule(r) => {
                (format!("rule {}", r.name), e.until().to_string(), None)
            }
        })
        .collect();
    ending.sort_by(|a, b| a.1.cmp(&b.1));
    let snap = netwarden::ops::status::Snapshot {
        policy: serde_json::from_str(&policy)?,
        ready: (ready.0, ready.1),
        lockouts,
        blocked: serde_json::from_str(&blocked).unwrap_or_default(),
        ending,
    };
    if format == "json" {
        out(&netwarden::ops::printable_json(&format!(
            "{}\n",
            netwarden::ops::status::json(&snap)
        )));
    } else {
        out(&netwarden::ops::status::text(&snap, lang));
    }
    Ok(ExitCode::SUCCESS)
}

/// `netwarden lockouts`: the locks in force, one line each.
fn lockouts(args: &AdminArgs) -> anyhow::Result<ExitCode> {
    let (status, body) = admin_call(args, "GET", "/lockouts", None)?;
    if status != 200 {
        eprintln!("netwarden lockouts: {status}: {}", shown(body.trim()));
        return Ok(ExitCode::from(1));
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let locks = v["locks"].as_array().cloned().unwrap_or_default();
    println!(
        "{} lock(s) in force (store: {})",
        locks.len(),
        shown(v["store"].as_str().unwrap_or("?"))
    );
    for l in &locks {
        let s = |k: &str| shown(l[k].as_str().unwrap_or("-"));
        println!(
            "  {:<22} {:<20} account {:<12}  until {}  strike {}",
            s("key"),
            s("scope"),
            s("account"),
            s("until"),
            shown(&l["strikes"].to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `netwarden release`.
fn release(args: &AdminArgs, body: &serde_json::Value) -> anyhow::Result<ExitCode> {
    let (status, text) = admin_call(args, "POST", "/lockouts/release", Some(body))?;
    if status != 200 {
        eprintln!("netwarden release: {status}: {}", shown(text.trim()));
        return Ok(ExitCode::from(1));
    }
    let v: serde_json::Value = serde_json::from_str(&text)?;
    println!("released {} lock(s)", shown(&v["released"].to_string()));
    Ok(ExitCode::SUCCESS)
}

/// A blocking HTTP/1.1 probe: exit 0 when the admin listener answers 200.
fn health(admin: SocketAddr, ready: bool) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(3);
    let path = if ready { "/readyz" } else { "/healthz" };
    let probe = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&admin, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
        )?;
        let mut reply = String::new();
        s.take(4096).read_to_string(&mut reply)?;
        Ok(reply)
    };
    match probe() {
        Ok(reply) if reply.starts_with("HTTP/1.1 200") => {
            println!("{admin}{path}: ok");
            Ok(ExitCode::SUCCESS)
        }
        Ok(reply) => {
            eprintln!(
                "{admin}{path}: {}",
                reply.lines().next().unwrap_or("no answer")
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{admin}{path}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let load = |path: &PathBuf| match policy::load(path) {
        Ok(l) => Ok(l.policy),
        Err(e) => {
            report_load_error(&e);
            Err(())
        }
    };
    let Ok(candidate) = load(&args.policy) else {
        return Ok(ExitCode::from(2));
    };
    let baseline = match &args.baseline {
        Some(b) => match load(b) {
            Ok(p) => Some(p),
            Err(()) => return Ok(ExitCode::from(2)),
        },
        None => None,
    };
    let mut summary = netwarden::replay::Summary::default();
    for log in &args.logs {
        let mut input =
            netwarden::replay::open(log).with_context(|| format!("cannot read {log}"))?;
        netwarden::replay::replay(&candidate, baseline.as_ref(), &mut input, &mut summary)
            .with_context(|| format!("cannot read {log}"))?;
    }
    if args.json {
        out(&format!("{}\n", summary.to_json()));
    } else {
        out(&summary.to_string());
        // Which published lists and DNS answers the replay decided with.
        print_feeds(&candidate);
    }
    Ok(if summary.changed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
