//! Keeps `deploy/` honest: every flag and environment variable that the Compose file and the
//! Kubernetes manifests give the demo's binary exists in that binary's `--help` (of the
//! gateway, or of its `users` / `orders` subcommand), and the files have the shape the README
//! promises. The image is not built here (no network); the Dockerfile is checked for its parts.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_yaml_ng::Value;

const BIN: &str = env!("CARGO_BIN_EXE_demo-gateway");
/// The image name the files use for this binary.
const IMAGE: &str = "demo-gateway";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The flags and environment variables one `--help` lists.
#[derive(Debug)]
struct Help {
    command: &'static str,
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

impl Help {
    /// `demo-gateway [subcommand] --help`, read.
    fn of(subcommand: Option<&'static str>) -> Self {
        let output = std::process::Command::new(BIN)
            .args(subcommand)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success());
        // One line: help text wraps anywhere, also inside `[env: NAME=]`.
        let text = String::from_utf8(output.stdout).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let flags = text
            .split(|c: char| !word(c))
            .filter(|token| token.starts_with("--") && token.len() > 2)
            .map(str::to_owned)
            .collect();
        let env = text
            .split("[env: ")
            .skip(1)
            .map(|rest| rest.split(['=', ']']).next().unwrap().to_owned())
            .collect();
        Self {
            command: subcommand.unwrap_or("gateway"),
            flags,
            env,
        }
    }

    /// Checks `args` (flags, `--flag=value` or `--flag value`) and `env` names.
    fn check(&self, origin: &str, args: &[String], env: &[String]) -> usize {
        let mut checked = 0;
        for arg in args.iter().filter(|arg| arg.starts_with("--")) {
            let flag = arg.split('=').next().unwrap();
            assert!(
                self.flags.contains(flag),
                "{origin}: {flag} is not a flag of `demo-gateway {}`; it has {:?}",
                self.command,
                self.flags
            );
            checked += 1;
        }
        for name in env {
            assert!(
                self.env.contains(name),
                "{origin}: {name} is not an environment variable of `demo-gateway {}`; it reads {:?}",
                self.command,
                self.env
            );
            checked += 1;
        }
        checked
    }
}

/// The help to check a container's arguments against: its first argument names the service.
fn help_for<'a>(helps: &'a [Help], args: &[String]) -> &'a Help {
    let command = args
        .first()
        .map(String::as_str)
        .filter(|first| ["users", "orders"].contains(first))
        .unwrap_or("gateway");
    helps.iter().find(|help| help.command == command).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn helps() -> Vec<Help> {
    vec![
        Help::of(None),
        Help::of(Some("users")),
        Help::of(Some("orders")),
    ]
}

fn read_yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap();
            value.apply_merge().unwrap();
            value
        })
        .collect()
}

#[test]
fn compose_uses_only_flags_and_variables_the_binary_has() {
    let helps = helps();
    let compose = read_yaml_documents(&deploy_dir().join("compose.yaml")).remove(0);
    let services = compose["services"].as_mapping().unwrap();
    let mut ours = BTreeSet::new();
    let mut checked = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let image = service["image"].as_str().unwrap_or_default();
        if !image.starts_with(IMAGE) {
            continue;
        }
        ours.insert(name.to_owned());
        let args = strings(&service["command"]);
        let env: Vec<String> = service["environment"]
            .as_mapping()
            .map(|vars| {
                vars.keys()
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        checked += help_for(&helps, &args).check(&format!("compose {name}"), &args, &env);
    }
    let expected = ["gateway", "orders", "users-1", "users-2"];
    assert_eq!(ours, expected.iter().map(|s| (*s).to_owned()).collect());
    assert!(checked > 10, "checked only {checked} flags and variables");
}

/// Every container of our image in the Kubernetes manifests, as (file, workload, container).
fn kubernetes_containers() -> Vec<(String, Value, Value)> {
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        assert_eq!(path.extension().unwrap(), "yaml", "{}", path.display());
        for document in read_yaml_documents(&path) {
            let containers = &document["spec"]["template"]["spec"]["containers"];
            for container in containers.as_sequence().into_iter().flatten() {
                let image = container["image"].as_str().unwrap_or_default();
                if image.starts_with(IMAGE) {
                    let file = path.file_name().unwrap().to_string_lossy().into_owned();
                    found.push((file, document.clone(), container.clone()));
                }
            }
        }
    }
    found
}

#[test]
fn kubernetes_manifests_use_only_flags_and_variables_the_binary_has() {
    let helps = helps();
    let mut checked = 0;
    let containers = kubernetes_containers();
    for (file, _, container) in &containers {
        let args = strings(&container["args"]);
        assert!(
            container["command"].is_null(),
            "{file}: keep the image's entrypoint"
        );
        let env: Vec<String> = container["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|var| var["name"].as_str().unwrap().to_owned())
            .collect();
        checked += help_for(&helps, &args).check(&file.to_string(), &args, &env);
    }
    assert_eq!(containers.len(), 3, "gateway, users and orders");
    assert!(checked > 10, "checked only {checked} flags and variables");
}

#[test]
fn kubernetes_runs_two_users_replicas_behind_a_headless_service_and_probes_ready_and_health() {
    let documents = read_yaml_documents(&deploy_dir().join("kubernetes/users.yaml"));
    let kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap()
            .clone()
    };
    assert_eq!(kind("Deployment")["spec"]["replicas"], 2);
    assert_eq!(kind("Service")["spec"]["clusterIP"], "None");
    let containers = kubernetes_containers();
    let (_, _, gateway) = containers
        .iter()
        .find(|(file, _, _)| file == "gateway.yaml")
        .unwrap();
    for (file, _, container) in &containers {
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/ready",
            "{file}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/health",
            "{file}"
        );
    }
    assert!(strings(&gateway["args"]).contains(&"--users=dns://users:8081".to_owned()));
    for (file, workload, _) in &containers {
        // The drain takes at most 30 s, after a 5 s preStop: the grace period must cover both.
        let grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        assert!(grace > 35, "{file}: terminationGracePeriodSeconds {grace}");
    }
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_as_non_root() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(
        stages >= 2,
        "multi-stage: a build stage and a runtime stage"
    );
    assert!(text.contains("cargo build --release --locked -p demo-gateway"));
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.ends_with(" root") && !user.ends_with(" 0"), "{user}");
    assert!(lines.contains(&r#"ENTRYPOINT ["demo-gateway"]"#));
}
