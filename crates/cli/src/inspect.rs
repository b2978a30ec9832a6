//! `trellis proxy-status` and `trellis proxy-config`: what the control plane's debug API says
//! about connected proxies and their configuration.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use serde_json::Value;

use crate::control::DEBUG_ADDRESS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The control plane's debug address.
    #[arg(long, value_name = "ADDR", default_value = DEBUG_ADDRESS, env = "TRELLIS_CONTROL_DEBUG")]
    control: SocketAddr,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Part {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    /// Which part of the configuration.
    #[arg(value_enum)]
    part: Part,
    /// The proxy: <workload>[.<namespace>] (namespace `default` when left out).
    proxy: String,
    /// The control plane's debug address.
    #[arg(long, value_name = "ADDR", default_value = DEBUG_ADDRESS, env = "TRELLIS_CONTROL_DEBUG")]
    control: SocketAddr,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// `<workload>.<namespace>` from what the user typed (`default` when no namespace is given).
pub(crate) fn qualified(proxy: &str) -> String {
    if proxy.contains('.') {
        proxy.to_owned()
    } else {
        format!("{proxy}.default")
    }
}

/// GETs `path` from the debug API and parses its JSON.
pub(crate) fn get(control: SocketAddr, path: &str) -> anyhow::Result<Value> {
    call(control, "GET", path, "")
}

pub(crate) fn post(control: SocketAddr, path: &str, body: &Value) -> anyhow::Result<Value> {
    call(control, "POST", path, &body.to_string())
}

/// A request to the debug API; its JSON answer, or the error it gave.
fn call(control: SocketAddr, method: &str, path: &str, body: &str) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect_timeout(&control, Duration::from_secs(5)).with_context(
        || format!("cannot reach the control plane's debug API at {control} (is `trellis control` running? --control sets the address)"),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {control}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the debug API's answer has no body")?;
    let status = head.split(' ').nth(1).unwrap_or("");
    let value: Value = serde_json::from_str(body)
        .with_context(|| format!("the debug API's answer is not JSON: {body}"))?;
    if status != "200" {
        bail!(
            "{}",
            value["error"].as_str().unwrap_or("the debug API refused")
        );
    }
    Ok(value)
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let proxies = get(args.control, "/debug/proxies")?;
    if args.output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&proxies)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mesh = get(args.control, "/debug/config")?;
    println!(
        "control plane: configuration version {}, {} resources{}",
        mesh["version"],
        mesh["resources"].as_array().map_or(0, Vec::len),
        match mesh["refused"].as_object().map_or(0, |r| r.len()) {
            0 => String::new(),
            n => format!(", {n} file(s) refused (see /debug/config)"),
        }
    );
    let rows: Vec<[String; 6]> = proxies
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let state = |url: &str| {
                let t = &p["types"][url];
                if let Some(reason) = t["nacked"].as_str() {
                    format!("NACK ({reason})")
                } else if t["sent"].is_null() {
                    "-".to_owned()
                } else if t["sent"] == t["acked"] {
                    "SYNCED".to_owned()
                } else {
                    "STALE".to_owned()
                }
            };
            [
                p["id"].as_str().unwrap_or("?").to_owned()
                    + if p["known_workload"] == Value::Bool(true) {
                        ""
                    } else {
                        " (unknown workload)"
                    },
                state(trellis_proto::type_url::LISTENER),
                state(trellis_proto::type_url::ROUTE_TABLE),
                state(trellis_proto::type_url::ON_DEMAND_HOST),
                state(trellis_proto::type_url::CLUSTER),
                p["mesh_version"].to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "LISTENERS",
            "ROUTES",
            "HOSTS",
            "CLUSTERS",
            "VERSION",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn config(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let proxy = qualified(&args.proxy);
    let answer = get(args.control, &format!("/debug/proxy_config?proxy={proxy}"))?;
    let config = &answer["config"];
    let part = match args.part {
        Part::Listeners => config["listeners"].clone(),
        Part::Routes => config["routes"].clone(),
        Part::Clusters | Part::Endpoints => config["clusters"].clone(),
    };
    if args.output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&part)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = match args.part {
        Part::Listeners => part
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                let (kind, target) = match l["protocol"].as_object().and_then(|o| o.iter().next()) {
                    Some((kind, v)) => (
                        kind.clone(),
                        v["route_table"]
                            .as_str()
                            .or(v["cluster"].as_str())
                            .unwrap_or("")
                            .to_owned(),
                    ),
                    None => (String::new(), String::new()),
                };
                vec![text(&l["name"]), text(&l["address"]), kind, target]
            })
            .collect(),
        Part::Routes => part
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, t)| {
                t["virtual_hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |h| {
                        let domains: Vec<String> = h["domains"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(text)
                            .collect();
                        let on_demand = t["on_demand"] == Value::Bool(true);
                        vec![
                            // The proxy holds the hosts of an on-demand table it was asked for.
                            table.clone() + if on_demand { " (on demand)" } else { "" },
                            text(&h["name"]),
                            domains.join(","),
                            h["routes"].as_array().map_or(0, Vec::len).to_string(),
                        ]
                    })
            })
            .collect(),
        Part::Clusters => part
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, c)| {
                vec![
                    name.clone(),
                    c["endpoints"].as_array().map_or(0, Vec::len).to_string(),
                    match &c["load_balancer"] {
                        Value::String(s) => s.clone(),
                        Value::Object(o) => o.keys().next().cloned().unwrap_or_default(),
                        _ => String::new(),
                    },
                ]
            })
            .collect(),
        Part::Endpoints => part
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(name, c)| {
                c["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |e| vec![text(&e["address"]), name.clone()])
            })
            .collect(),
    };
    let headers: &[&str] = match args.part {
        Part::Listeners => &["NAME", "ADDRESS", "PROTOCOL", "TO"],
        Part::Routes => &["TABLE", "VIRTUAL HOST", "DOMAINS", "ROUTES"],
        Part::Clusters => &["NAME", "ENDPOINTS", "BALANCER"],
        Part::Endpoints => &["ENDPOINT", "CLUSTER"],
    };
    table(headers, &rows);
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", text(warning));
    }
    if answer["known_workload"] == Value::Bool(false) {
        eprintln!(
            "note: the registry has no workload {proxy}; this is what an unknown sidecar of that name gets"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows in aligned columns.
fn table<R: AsRef<[String]>>(headers: &[&str], rows: &[R]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.as_ref().iter().map(String::as_str).collect());
    }
}
