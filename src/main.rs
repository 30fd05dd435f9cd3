//! The `netwarden` command line: parse arguments, call the library, choose
//! the exit code. Exit codes: 0 success, 1 invalid policy (or failed policy
//! tests), 2 bad arguments.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use netwarden::engine::client::parse_ip;
use netwarden::engine::trace::{Recorder, Report};
use netwarden::engine::{ClientSource, RequestFacts, decide_traced};
use netwarden::policy::{self, LoadError};

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
    /// Run the embedded example policy on sample requests (nothing to set up).
    Demo,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Explain(args) => explain(&args),
        Command::Demo => match netwarden::demo::run() {
            Ok(report) => {
                print!("{report}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(report_load_error(&e)),
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

/// Prints a load failure's diagnostics; the exit code for an invalid policy.
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
    println!(
        "{}: ok: {} network(s), {} rule(s), {} test(s) passed, {} warning(s)",
        args.policy.display(),
        p.networks().len(),
        p.rules().len(),
        loaded.tests_passed,
        loaded.warnings.len()
    );
    Ok(ExitCode::SUCCESS)
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
    let facts = RequestFacts {
        client,
        method: &args.method,
        host: args.host.as_deref(),
        path: &args.path,
    };
    let mut trace = Recorder::default();
    let decision = decide_traced(&loaded.policy, &facts, &mut trace);
    let report = Report {
        policy: &loaded.policy,
        decision: &decision,
        trace: &trace,
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
