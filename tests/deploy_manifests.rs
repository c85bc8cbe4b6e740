//! The operator-facing deliverables under deploy/ and schemas/asyncapi.yaml: every file parses,
//! the manifests have what an orchestrator needs and pass kubeconform against Kubernetes' (and
//! the Prometheus Operator's) schemas, the alert rules and every dashboard query pass promtool,
//! the AsyncAPI document references exactly the schemas that exist, the environment variables
//! they set are real flags, and every metric the dashboard and the alert rules query is really
//! exported by a running windowkeeper.
//!
//! The tools come from `scripts/test`, which installs them and names them in `PROMTOOL`,
//! `KUBECONFORM` and `KUBERNETES_JSON_SCHEMAS`; without them these tests fail, saying so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a YAML file (`---`-separated), merge keys (`<<:`) applied, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, document)| {
            let mut value = serde_norway::Value::deserialize(document).unwrap_or_else(|e| {
                panic!("{} document {i} is not valid YAML: {e}", path.display())
            });
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{} document {i}: bad merge key: {e}", path.display()));
            serde_json::to_value(value)
                .unwrap_or_else(|e| panic!("{} document {i} is not JSON-like: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of a single-document YAML file.
fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(
        documents.len(),
        1,
        "{} should hold exactly one YAML document",
        path.display()
    );
    documents.remove(0)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn with_extension(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files.retain(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
    });
    files.sort();
    files
}

/// `v[pointer]` as a string, or a failure naming the file and the pointer.
fn text<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            panic!(
                "{what}: {pointer} should be a string, got {:?}",
                v.pointer(pointer)
            )
        })
}

fn array<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a Vec<Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| {
            panic!(
                "{what}: {pointer} should be a list, got {:?}",
                v.pointer(pointer)
            )
        })
}

fn object<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a serde_json::Map<String, Value> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| {
            panic!(
                "{what}: {pointer} should be a mapping, got {:?}",
                v.pointer(pointer)
            )
        })
}

/// Every string value (recursively) under keys named `key`.
fn strings_under_key(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == key {
                    if let Some(s) = child.as_str() {
                        out.push(s.to_owned());
                    }
                }
                strings_under_key(child, key, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| strings_under_key(item, key, out)),
        _ => {}
    }
}

/// An external tool: the path in `variable`, else `name` on the PATH; a failure that says how
/// to get it otherwise.
fn tool(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{variable}={} is not a file; scripts/test installs {name}",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is needed and was not found: run scripts/test, which installs it, or set \
                 {variable} to its path"
            )
        })
}

/// Runs `program` with `args`: whether it succeeded, its stdout, its stderr.
fn run_tool<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S]) -> (bool, String, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `promtool check rules FILE`; a failure shows what promtool said about `what`.
fn promtool_check_rules(promtool: &Path, what: &str, file: &Path) {
    let (ok, stdout, stderr) = run_tool(
        promtool,
        &["check".as_ref(), "rules".as_ref(), file.as_os_str()],
    );
    assert!(
        ok && stdout.contains("SUCCESS"),
        "promtool check rules refuses {what}:\n{stdout}{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// (a) Everything parses.

const REQUIRED_FILES: &[&str] = &[
    "deploy/Dockerfile",
    "deploy/README.md",
    "deploy/docker-compose.yml",
    "deploy/prometheus/prometheus.yml",
    "deploy/prometheus/alerts.yml",
    "deploy/grafana/provisioning/datasources/prometheus.yml",
    "deploy/grafana/provisioning/dashboards/dashboards.yml",
    "deploy/grafana/dashboards/windowkeeper.json",
    "deploy/kubernetes/namespace.yaml",
    "deploy/kubernetes/configmap.yaml",
    "deploy/kubernetes/secret.example.yaml",
    "deploy/kubernetes/receiver-deployment.yaml",
    "deploy/kubernetes/receiver-service.yaml",
    "deploy/kubernetes/receiver-pdb.yaml",
    "deploy/kubernetes/tracker-deployment.yaml",
    "deploy/kubernetes/tracker-service.yaml",
    "deploy/kubernetes/servicemonitor.yaml",
    "deploy/kubernetes/kustomization.yaml",
    "schemas/asyncapi.yaml",
];

#[test]
fn every_deploy_file_parses() {
    for file in REQUIRED_FILES {
        assert!(root().join(file).is_file(), "{file} is missing");
    }
    let mut yaml_files = with_extension(&deploy(), &["yml", "yaml"]);
    yaml_files.push(root().join("schemas/asyncapi.yaml"));
    assert!(
        yaml_files.len() >= 15,
        "too few YAML files found: {yaml_files:?}"
    );
    for path in &yaml_files {
        assert!(
            !yaml_documents(path).is_empty(),
            "{} holds no YAML document",
            path.display()
        );
    }
    for path in with_extension(&deploy(), &["json"]) {
        assert!(
            json(&path).is_object(),
            "{} should be a JSON object",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Docker, compose, Prometheus, Grafana.

#[test]
fn dockerfile_is_multi_stage_and_runs_as_non_root() {
    let path = deploy().join("Dockerfile");
    let dockerfile = read(&path);
    // Instructions, continuation lines folded, comments dropped.
    let folded = dockerfile.replace("\\\n", " ");
    let instructions: Vec<(String, String)> = folded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(op, rest)| (op.to_ascii_uppercase(), rest.trim().to_owned()))
        .collect();
    let of = |op: &str| {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
    };

    assert!(
        of("FROM").len() >= 2,
        "deploy/Dockerfile should be multi-stage (2+ FROM), has {:?}",
        of("FROM")
    );
    assert!(
        of("COPY").iter().any(|c| c.starts_with("--from=")),
        "the runtime stage should COPY --from the builder"
    );
    assert!(
        of("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "the builder should run `cargo build --release --locked`"
    );
    let user = *of("USER")
        .last()
        .unwrap_or_else(|| panic!("deploy/Dockerfile has no USER"));
    let user_name = user.split(':').next().unwrap_or_default();
    assert!(
        !matches!(user_name, "root" | "0" | ""),
        "the final USER must not be root, is {user:?}"
    );
    assert!(
        user_name.chars().all(|c| c.is_ascii_digit()),
        "USER should be numeric so runAsNonRoot can verify it, is {user:?}"
    );
    let exposed: Vec<&str> = of("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    for port in ["8080", "9464"] {
        assert!(
            exposed.contains(&port),
            "EXPOSE should include {port}, has {exposed:?}"
        );
    }
    assert_eq!(
        of("ENTRYPOINT").last().copied(),
        Some(r#"["/usr/local/bin/windowkeeper"]"#)
    );
    assert_eq!(of("CMD").last().copied(), Some(r#"["run"]"#));
    // Context is the repository root: every local COPY source must exist there.
    for copy in of("COPY").iter().filter(|c| !c.starts_with("--from=")) {
        let parts: Vec<&str> = copy
            .split_whitespace()
            .filter(|p| !p.starts_with("--"))
            .collect();
        for source in &parts[..parts.len().saturating_sub(1)] {
            assert!(
                root().join(source).exists(),
                "COPY source {source} does not exist in the repository root"
            );
        }
    }
}

/// Every compose `environment` as a name -> value map (list or mapping form).
fn environment(service: &Value, what: &str) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("{what}: environment should be a list or mapping, is {other}"),
    }
}

/// `(source, target)` of a service's short-form volumes.
fn volumes(service: &Value) -> Vec<(String, String)> {
    service
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|v| {
            let mut parts = v.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn compose_runs_kafka_the_two_services_and_monitoring() {
    let path = deploy().join("docker-compose.yml");
    let compose = yaml(&path);
    let services = object(&compose, "/services", "docker-compose.yml");
    for name in ["kafka", "receiver", "tracker", "prometheus", "grafana"] {
        assert!(
            services.contains_key(name),
            "docker-compose.yml has no service {name}"
        );
    }

    let kafka = &services["kafka"];
    assert!(
        text(kafka, "/image", "kafka").starts_with("apache/kafka:"),
        "kafka should use apache/kafka"
    );
    let kafka_env = environment(kafka, "kafka");
    let roles = kafka_env
        .get("KAFKA_PROCESS_ROLES")
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "kafka should be a KRaft broker+controller"
    );
    assert!(
        kafka_env
            .get("KAFKA_ADVERTISED_LISTENERS")
            .is_some_and(|l| l.contains("kafka:9092")),
        "kafka should advertise kafka:9092"
    );
    let health = kafka
        .pointer("/healthcheck/test")
        .map(Value::to_string)
        .unwrap_or_default();
    assert!(
        health.contains("kafka-broker-api-versions.sh"),
        "kafka needs a healthcheck, has {health}"
    );

    for (name, command) in [("receiver", "receiver"), ("tracker", "tracker")] {
        let service = &services[name];
        let context = text(service, "/build/context", name);
        let dockerfile = text(service, "/build/dockerfile", name);
        assert!(
            deploy().join(context).join(dockerfile).is_file(),
            "{name}: build {context}/{dockerfile} does not exist relative to deploy/"
        );
        let args: Vec<&str> = array(service, "/command", name)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            args.first().copied(),
            Some(command),
            "{name} should run `windowkeeper {command}`"
        );
        assert_eq!(
            environment(service, name)
                .get("WINDOWKEEPER_KAFKA_BROKERS")
                .map(String::as_str),
            Some("kafka:9092"),
            "{name} should reach kafka:9092"
        );
        assert_eq!(
            text(service, "/depends_on/kafka/condition", name),
            "service_healthy",
            "{name} should wait for a healthy kafka"
        );
    }
    let receiver_env = environment(&services["receiver"], "receiver");
    for secret in ["META_APP_SECRET", "META_VERIFY_TOKEN"] {
        let value = receiver_env
            .get(secret)
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            value.starts_with(&format!("${{{secret}:?")),
            "receiver's {secret} should come from the environment and be required, is {value:?}"
        );
    }
    let ports = services["receiver"]
        .get("ports")
        .map(Value::to_string)
        .unwrap_or_default();
    assert!(
        ports.contains("8080"),
        "receiver should publish port 8080, has {ports}"
    );
    assert!(
        !environment(&services["tracker"], "tracker")
            .keys()
            .any(|k| k.starts_with("META_")),
        "the tracker needs no Meta secret"
    );

    // Bind mounts point at files that exist.
    for (name, service) in services {
        for (source, _) in volumes(service) {
            if source.starts_with("./") || source.starts_with("../") {
                assert!(
                    deploy().join(&source).exists(),
                    "{name}: volume source {source} does not exist"
                );
            }
        }
    }

    // Prometheus scrapes both admin ports and loads the rules it is given.
    let prometheus = yaml(&deploy().join("prometheus/prometheus.yml"));
    let mut targets: Vec<&str> = Vec::new();
    for job in array(&prometheus, "/scrape_configs", "prometheus.yml") {
        for config in job
            .get("static_configs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let listed = config
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            targets.extend(listed.filter_map(Value::as_str));
        }
    }
    for target in ["receiver:9464", "tracker:9464"] {
        assert!(
            targets.contains(&target),
            "prometheus.yml should scrape {target}, has {targets:?}"
        );
    }
    let mounted: BTreeMap<String, String> = volumes(&services["prometheus"])
        .into_iter()
        .map(|(s, t)| (t, s))
        .collect();
    let rule_files = array(&prometheus, "/rule_files", "prometheus.yml");
    assert!(
        !rule_files.is_empty(),
        "prometheus.yml should load the alert rules"
    );
    for rule_file in rule_files.iter().filter_map(Value::as_str) {
        let source = mounted.get(rule_file).unwrap_or_else(|| {
            panic!("rule file {rule_file} is not mounted into the prometheus service")
        });
        assert!(
            source.ends_with("alerts.yml"),
            "{rule_file} should be deploy/prometheus/alerts.yml, is {source}"
        );
    }

    // Grafana: the data source uid the dashboard uses, and a provider path that is mounted.
    let datasources = yaml(&deploy().join("grafana/provisioning/datasources/prometheus.yml"));
    let uids: Vec<&str> = array(&datasources, "/datasources", "datasources")
        .iter()
        .filter_map(|d| d.get("uid").and_then(Value::as_str))
        .collect();
    assert!(
        uids.contains(&"prometheus"),
        "a Grafana data source with uid `prometheus` is needed, has {uids:?}"
    );
    let providers = yaml(&deploy().join("grafana/provisioning/dashboards/dashboards.yml"));
    let grafana_mounts: BTreeMap<String, String> = volumes(&services["grafana"])
        .into_iter()
        .map(|(s, t)| (t, s))
        .collect();
    for provider in array(&providers, "/providers", "dashboards.yml") {
        let dir = text(provider, "/options/path", "dashboards.yml provider");
        let source = grafana_mounts.get(dir).unwrap_or_else(|| {
            panic!("dashboard path {dir} is not mounted into the grafana service")
        });
        assert!(
            deploy().join(source).join("windowkeeper.json").is_file(),
            "{source} (mounted at {dir}) should hold windowkeeper.json"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Kubernetes.

struct Manifests {
    /// (file name, document)
    documents: Vec<(String, Value)>,
}

impl Manifests {
    fn load() -> Self {
        let mut documents = Vec::new();
        for path in with_extension(&deploy().join("kubernetes"), &["yml", "yaml"]) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            for document in yaml_documents(&path) {
                documents.push((name.clone(), document));
            }
        }
        Self { documents }
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.documents
            .iter()
            .map(|(_, d)| d)
            .find(|d| {
                d["kind"] == kind
                    && d.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} named {name} under deploy/kubernetes"))
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.documents
            .iter()
            .map(|(_, d)| d)
            .filter(|d| d["kind"] == kind)
            .collect()
    }
}

/// Whether `selector` (`matchLabels`-style map) selects an object with `labels`.
fn selects(
    selector: &serde_json::Map<String, Value>,
    labels: &serde_json::Map<String, Value>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container port a probe's `port` means (a number or a named container port).
fn probe_port(container: &Value, probe: &Value, what: &str) -> u64 {
    match probe.pointer("/httpGet/port") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or_default(),
        Some(Value::String(name)) => array(container, "/ports", what)
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .unwrap_or_else(|| panic!("{what}: probe port {name} is not a named container port")),
        other => panic!("{what}: probe has no httpGet port: {other:?}"),
    }
}

fn check_probe(container: &Value, probe: &str, path: &str, what: &str) {
    let spec = container
        .get(probe)
        .unwrap_or_else(|| panic!("{what} has no {probe}"));
    assert_eq!(
        text(spec, "/httpGet/path", what),
        path,
        "{what}: {probe} should ask {path}"
    );
    assert_eq!(
        probe_port(container, spec, what),
        9464,
        "{what}: {probe} should use the admin port 9464"
    );
}

/// Checks shared by the receiver and the tracker pod templates; returns the container.
fn check_pod_template<'a>(workload: &'a Value, what: &str) -> &'a Value {
    let pod = workload
        .pointer("/spec/template/spec")
        .unwrap_or_else(|| panic!("{what} has no pod template"));
    let containers = array(pod, "/containers", what);
    assert_eq!(containers.len(), 1, "{what} should run one container");
    let container = &containers[0];
    check_probe(container, "livenessProbe", "/healthz", what);
    check_probe(container, "readinessProbe", "/readyz", what);
    for pointer in [
        "/resources/requests/cpu",
        "/resources/requests/memory",
        "/resources/limits/cpu",
        "/resources/limits/memory",
    ] {
        assert!(
            container.pointer(pointer).is_some(),
            "{what}: container needs {pointer}"
        );
    }
    let non_root =
        |v: &Value| v.pointer("/securityContext/runAsNonRoot") == Some(&Value::Bool(true));
    assert!(
        non_root(pod) || non_root(container),
        "{what} must set runAsNonRoot: true"
    );
    assert_eq!(
        container.pointer("/securityContext/readOnlyRootFilesystem"),
        Some(&Value::Bool(true)),
        "{what}: the root filesystem should be read-only"
    );
    assert_eq!(
        container.pointer("/securityContext/allowPrivilegeEscalation"),
        Some(&Value::Bool(false)),
        "{what}: no privilege escalation"
    );
    assert_eq!(
        pod.get("terminationGracePeriodSeconds")
            .and_then(Value::as_u64),
        Some(30),
        "{what}: grace period"
    );
    // The selector selects the template.
    let selector = object(workload, "/spec/selector/matchLabels", what);
    let labels = object(workload, "/spec/template/metadata/labels", what);
    assert!(
        selects(selector, labels),
        "{what}: the selector does not select the pod template"
    );
    container
}

fn env_from_names(container: &Value, kind: &str) -> Vec<String> {
    container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.pointer(&format!("/{kind}/name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn kubernetes_manifests_are_complete() {
    let manifests = Manifests::load();
    for (file, document) in &manifests.documents {
        if file == "kustomization.yaml" {
            continue;
        }
        for pointer in ["/apiVersion", "/kind", "/metadata/name"] {
            let value = document
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(
                !value.is_empty(),
                "deploy/kubernetes/{file}: a document has no {pointer}"
            );
        }
    }

    // kustomization: every manifest but the secret example, and nothing that does not exist.
    let kustomization = yaml(&deploy().join("kubernetes/kustomization.yaml"));
    let resources: BTreeSet<String> = array(&kustomization, "/resources", "kustomization.yaml")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let manifest_files: BTreeSet<String> = manifests
        .documents
        .iter()
        .map(|(file, _)| file.clone())
        .filter(|f| f != "kustomization.yaml" && f != "secret.example.yaml")
        .collect();
    assert!(
        !resources.contains("secret.example.yaml"),
        "the secret example must not be applied by kustomize"
    );
    assert_eq!(
        resources, manifest_files,
        "kustomization.yaml resources should list every manifest"
    );

    // Secret example.
    let secret = manifests.find("Secret", "windowkeeper-meta");
    let secret_data = secret
        .get("stringData")
        .or_else(|| secret.get("data"))
        .and_then(Value::as_object);
    for key in ["META_APP_SECRET", "META_VERIFY_TOKEN"] {
        assert!(
            secret_data.is_some_and(|d| d.contains_key(key)),
            "Secret windowkeeper-meta needs key {key}"
        );
    }
    assert!(
        read(&deploy().join("kubernetes/secret.example.yaml")).contains("secret store"),
        "the secret example should say real values come from a secret store"
    );

    // ConfigMap: settings only, no secrets.
    let configmaps = manifests.of_kind("ConfigMap");
    assert_eq!(configmaps.len(), 1, "one ConfigMap expected");
    let configmap = configmaps[0];
    let configmap_name = text(configmap, "/metadata/name", "ConfigMap");
    for (key, value) in object(configmap, "/data", "ConfigMap") {
        assert!(
            key.starts_with("WINDOWKEEPER_"),
            "ConfigMap key {key} is not a windowkeeper setting"
        );
        assert!(
            !key.contains("SECRET") && !key.contains("VERIFY_TOKEN"),
            "ConfigMap must not hold the secret {key}"
        );
        assert!(
            value.is_string(),
            "ConfigMap value of {key} must be a string, is {value}"
        );
    }

    // Receiver.
    let receiver = manifests.find("Deployment", "windowkeeper-receiver");
    assert!(
        receiver.pointer("/spec/replicas").and_then(Value::as_u64) >= Some(2),
        "receiver: 2+ replicas"
    );
    let container = check_pod_template(receiver, "receiver Deployment");
    let args: Vec<&str> = array(container, "/args", "receiver")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        ["receiver"],
        "the receiver Deployment should run `windowkeeper receiver`"
    );
    assert_eq!(
        env_from_names(container, "configMapRef"),
        [configmap_name],
        "receiver envFrom ConfigMap"
    );
    assert_eq!(
        env_from_names(container, "secretRef"),
        ["windowkeeper-meta"],
        "receiver envFrom Secret"
    );
    let receiver_labels = object(receiver, "/spec/template/metadata/labels", "receiver");

    let receiver_service = manifests.find("Service", "windowkeeper-receiver");
    assert!(
        selects(
            object(receiver_service, "/spec/selector", "receiver Service"),
            receiver_labels
        ),
        "the receiver Service does not select the receiver pods"
    );
    let ports: BTreeMap<&str, u64> = array(receiver_service, "/spec/ports", "receiver Service")
        .iter()
        .filter_map(|p| Some((p.get("name")?.as_str()?, p.get("port")?.as_u64()?)))
        .collect();
    assert_eq!(
        ports.get("http"),
        Some(&8080),
        "receiver Service port http 8080"
    );
    assert_eq!(
        ports.get("metrics"),
        Some(&9464),
        "receiver Service port metrics 9464"
    );

    let pdbs = manifests.of_kind("PodDisruptionBudget");
    let receiver_pdb = pdbs
        .iter()
        .find(|p| {
            selects(
                object(p, "/spec/selector/matchLabels", "PDB"),
                receiver_labels,
            )
        })
        .unwrap_or_else(|| panic!("no PodDisruptionBudget selects the receiver pods"));
    assert_eq!(
        receiver_pdb
            .pointer("/spec/minAvailable")
            .and_then(Value::as_u64),
        Some(1),
        "receiver PDB"
    );

    // Tracker: a StatefulSet with static membership from the pod name.
    let tracker = manifests.find("StatefulSet", "windowkeeper-tracker");
    assert_eq!(
        tracker.pointer("/spec/replicas").and_then(Value::as_u64),
        Some(2),
        "tracker replicas"
    );
    let container = check_pod_template(tracker, "tracker StatefulSet");
    let args: Vec<&str> = array(container, "/args", "tracker")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        ["tracker"],
        "the tracker StatefulSet should run `windowkeeper tracker`"
    );
    assert_eq!(
        env_from_names(container, "configMapRef"),
        [configmap_name],
        "tracker envFrom ConfigMap"
    );
    let instance_id = array(container, "/env", "tracker")
        .iter()
        .find(|e| e["name"] == "WINDOWKEEPER_GROUP_INSTANCE_ID")
        .unwrap_or_else(|| panic!("the tracker needs WINDOWKEEPER_GROUP_INSTANCE_ID"));
    assert_eq!(
        text(
            instance_id,
            "/valueFrom/fieldRef/fieldPath",
            "WINDOWKEEPER_GROUP_INSTANCE_ID"
        ),
        "metadata.name",
        "the group instance id should be the pod name"
    );
    let tracker_labels = object(tracker, "/spec/template/metadata/labels", "tracker");
    let tracker_service = manifests.find("Service", text(tracker, "/spec/serviceName", "tracker"));
    assert_eq!(
        tracker_service.pointer("/spec/clusterIP"),
        Some(&Value::from("None")),
        "tracker Service headless"
    );
    assert!(
        selects(
            object(tracker_service, "/spec/selector", "tracker Service"),
            tracker_labels
        ),
        "the tracker Service does not select the tracker pods"
    );

    // ServiceMonitor: both Services, by their metrics port.
    let monitor = manifests
        .of_kind("ServiceMonitor")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no ServiceMonitor"));
    assert_eq!(
        text(monitor, "/apiVersion", "ServiceMonitor"),
        "monitoring.coreos.com/v1"
    );
    let match_labels = object(monitor, "/spec/selector/matchLabels", "ServiceMonitor");
    let endpoint_ports: Vec<&str> = array(monitor, "/spec/endpoints", "ServiceMonitor")
        .iter()
        .filter_map(|e| e.get("port").and_then(Value::as_str))
        .collect();
    assert!(
        endpoint_ports.contains(&"metrics"),
        "the ServiceMonitor should scrape port `metrics`"
    );
    for service in [receiver_service, tracker_service] {
        let name = text(service, "/metadata/name", "Service");
        assert!(
            selects(match_labels, object(service, "/metadata/labels", name)),
            "the ServiceMonitor does not select Service {name}"
        );
        let has_metrics_port = array(service, "/spec/ports", name)
            .iter()
            .any(|p| p["name"] == "metrics" && p["port"] == 9464);
        assert!(has_metrics_port, "Service {name} needs port metrics 9464");
    }

    // The PrometheusRule carries exactly the compose alert rules.
    let alerts = yaml(&deploy().join("prometheus/alerts.yml"));
    let rules = manifests.of_kind("PrometheusRule");
    assert!(
        !rules.is_empty(),
        "no PrometheusRule under deploy/kubernetes"
    );
    for rule in rules {
        if rule.pointer("/spec/groups") == alerts.get("groups") {
            continue;
        }
        let flatten = |groups: Option<&Value>| -> Vec<Value> {
            let groups = groups
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            groups
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect()
        };
        let (k8s, compose) = (
            flatten(rule.pointer("/spec/groups")),
            flatten(alerts.get("groups")),
        );
        let first = (0..k8s.len().max(compose.len())).find(|i| k8s.get(*i) != compose.get(*i));
        let shown = first.map(|i| (compose.get(i), k8s.get(i)));
        panic!(
            "kubernetes/prometheusrule.yaml differs from prometheus/alerts.yml (keep them in step); \
             first difference (alerts.yml, prometheusrule.yaml): {shown:#?}"
        );
    }
}

/// kubeconform, strict, against JSON schemas made from Kubernetes' own OpenAPI document and the
/// Prometheus Operator's CRDs (`KUBERNETES_JSON_SCHEMAS`, see scripts/test): every manifest is
/// valid, none is left unchecked but the kustomization (kustomize's, not the cluster's).
#[test]
fn kubernetes_manifests_pass_kubeconform() {
    let kubeconform = tool("KUBECONFORM", "kubeconform");
    let schemas = std::env::var_os("KUBERNETES_JSON_SCHEMAS")
        .map(PathBuf::from)
        .filter(|dir| dir.join("deployment-apps-v1.json").is_file())
        .unwrap_or_else(|| {
            panic!(
                "KUBERNETES_JSON_SCHEMAS should name a folder of Kubernetes JSON schemas \
                 (deployment-apps-v1.json, ...): run scripts/test, which makes one"
            )
        });
    let location = format!(
        "{}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        schemas.display()
    );
    let manifests = deploy().join("kubernetes");
    let (ok, stdout, stderr) = run_tool(
        &kubeconform,
        &[
            "-strict".as_ref(),
            "-verbose".as_ref(),
            "-output".as_ref(),
            "json".as_ref(),
            "-skip".as_ref(),
            "Kustomization".as_ref(),
            "-schema-location".as_ref(),
            location.as_ref(),
            manifests.as_os_str(),
        ],
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("kubeconform printed no JSON report ({e}):\n{stdout}{stderr}"));
    let resources = array(&report, "/resources", "kubeconform's report");
    let line = |r: &Value| {
        format!(
            "{} {} {}: {} {}",
            r["filename"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["status"].as_str().unwrap_or_default(),
            r["msg"].as_str().unwrap_or_default()
        )
    };
    let not_valid: Vec<String> = resources
        .iter()
        .filter(|r| r["status"] != "statusValid")
        .filter(|r| !(r["status"] == "statusSkipped" && r["kind"] == "Kustomization"))
        .map(line)
        .collect();
    assert!(
        ok && not_valid.is_empty(),
        "kubeconform refuses deploy/kubernetes:\n  {}\n{stderr}",
        not_valid.join("\n  ")
    );
    let valid = resources
        .iter()
        .filter(|r| r["status"] == "statusValid")
        .count();
    let documents = Manifests::load()
        .documents
        .iter()
        .filter(|(_, d)| d["kind"] != "Kustomization")
        .count();
    assert_eq!(
        valid, documents,
        "kubeconform should validate every manifest under deploy/kubernetes"
    );
}

/// Environment variable names `windowkeeper <command> --help` documents.
fn documented_env_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for command in ["run", "receiver", "tracker"] {
        let output = Command::new(binary())
            .args([command, "--help"])
            .output()
            .expect("windowkeeper --help runs");
        assert!(
            output.status.success(),
            "windowkeeper {command} --help failed"
        );
        let help = String::from_utf8_lossy(&output.stdout);
        for piece in help.split("[env: ").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    assert!(names.len() > 10, "too few env names in --help: {names:?}");
    names
}

/// The default of `--<flag>` as `windowkeeper run --help` prints it.
fn documented_default(flag: &str) -> String {
    let output = Command::new(binary())
        .args(["run", "--help"])
        .output()
        .expect("windowkeeper --help runs");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = help
        .find(&format!("--{flag} "))
        .unwrap_or_else(|| panic!("--{flag} is not in run --help"));
    let rest = &help[start..];
    let default = rest
        .find("[default: ")
        .map(|i| &rest[i + "[default: ".len()..])
        .unwrap_or_default();
    default.split(']').next().unwrap_or_default().to_owned()
}

#[test]
fn environment_variables_in_the_manifests_are_real_settings() {
    let documented = documented_env_names();
    // Read by the logging setup, not a flag.
    let extra = ["WINDOWKEEPER_LOG"];
    let mut used: Vec<(String, String)> = Vec::new();

    let compose = yaml(&deploy().join("docker-compose.yml"));
    for (name, service) in object(&compose, "/services", "docker-compose.yml") {
        for key in environment(service, name).into_keys() {
            used.push((format!("docker-compose.yml service {name}"), key));
        }
    }
    for (file, document) in Manifests::load().documents {
        if document["kind"] == "ConfigMap" {
            for key in object(&document, "/data", &file).keys() {
                used.push((file.clone(), key.clone()));
            }
        }
        for container in document
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                used.push((file.clone(), text(env, "/name", &file).to_owned()));
            }
        }
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(_, name)| name.starts_with("WINDOWKEEPER_"))
        .filter(|(_, name)| !documented.contains(name) && !extra.contains(&name.as_str()))
        .map(|(at, name)| format!("{name} (in {at})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "these variables are not windowkeeper settings (see `windowkeeper run --help`): {unknown:?}"
    );
    assert!(
        used.iter()
            .any(|(_, n)| n == "WINDOWKEEPER_GROUP_INSTANCE_ID"),
        "static membership is configured"
    );
}

// ---------------------------------------------------------------------------------------------
// (c) AsyncAPI.

#[test]
fn asyncapi_references_every_schema_and_only_existing_ones() {
    let schemas = root().join("schemas");
    let document = yaml(&schemas.join("asyncapi.yaml"));
    assert_eq!(text(&document, "/asyncapi", "asyncapi.yaml"), "3.0.0");

    let mut refs = Vec::new();
    strings_under_key(&document, "$ref", &mut refs);
    assert!(!refs.is_empty(), "asyncapi.yaml has no $ref");
    let mut referenced_files = BTreeSet::new();
    for reference in &refs {
        if let Some(pointer) = reference.strip_prefix('#') {
            assert!(
                document.pointer(pointer).is_some(),
                "asyncapi.yaml: $ref {reference} resolves to nothing"
            );
            continue;
        }
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let path = schemas.join(file);
        assert!(
            path.is_file(),
            "asyncapi.yaml: $ref {reference} names a file that does not exist"
        );
        let schema = json(&path);
        if !fragment.is_empty() {
            assert!(
                schema.pointer(fragment).is_some(),
                "asyncapi.yaml: $ref {reference} resolves to nothing"
            );
        }
        let canonical = path.canonicalize().expect("schema path");
        referenced_files.insert(
            canonical
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let present: BTreeSet<String> = with_extension(&schemas, &["json"])
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    let unreferenced: Vec<&String> = present.difference(&referenced_files).collect();
    assert!(
        unreferenced.is_empty(),
        "schemas/ files that asyncapi.yaml does not describe: {unreferenced:?}"
    );

    // The channels are the four topics under their default names; the state topic compacted.
    let channels = object(&document, "/channels", "asyncapi.yaml");
    let addresses: BTreeMap<&str, &str> = channels
        .iter()
        .map(|(id, channel)| (text(channel, "/address", id), id.as_str()))
        .collect();
    for flag in [
        "topic-inbound",
        "topic-window-events",
        "topic-window-state",
        "topic-deadletter",
    ] {
        let topic = documented_default(flag);
        assert!(
            addresses.contains_key(topic.as_str()),
            "asyncapi.yaml has no channel for --{flag}'s {topic}"
        );
    }
    let state_channel = &channels[addresses[documented_default("topic-window-state").as_str()]];
    assert_eq!(
        state_channel.pointer("/bindings/kafka/topicConfiguration/cleanup.policy"),
        Some(&serde_json::json!(["compact"])),
        "the state topic is compacted"
    );

    // Internal routing types are on the inbound topic and marked internal.
    let inbound = &channels[addresses[documented_default("topic-inbound").as_str()]];
    let messages = object(&document, "/components/messages", "asyncapi.yaml");
    for (id, message) in messages {
        let name = message
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.starts_with("windowkeeper.") {
            let tags = message
                .get("tags")
                .map(Value::to_string)
                .unwrap_or_default();
            assert!(
                tags.contains("\"internal\""),
                "message {id} ({name}) should be tagged internal"
            );
            assert!(
                inbound
                    .to_string()
                    .contains(&format!("#/components/messages/{id}\"")),
                "internal message {id} belongs to the inbound channel"
            );
        }
    }

    // windowkeeper sends to all four; downstream receives.
    let operations = object(&document, "/operations", "asyncapi.yaml");
    for (channel_id, _) in channels {
        let reference = format!("#/channels/{channel_id}");
        for action in ["send", "receive"] {
            assert!(
                operations.values().any(|op| op["action"] == action
                    && op.pointer("/channel/$ref") == Some(&Value::from(reference.as_str()))),
                "no `{action}` operation on channel {channel_id}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alert rules and dashboard, statically; (d) their metrics against a real scrape.

const LABEL_VALUES: &[(&str, &[&str])] = &[
    (
        "outcome",
        &[
            "accepted",
            "dead_lettered",
            "unauthorized",
            "too_large",
            "client_timeout",
            "unavailable",
            "verified",
            "forbidden",
        ],
    ),
    ("reason", &["missing", "malformed", "mismatch"]),
    ("operation", &["publish", "consume", "commit", "metadata"]),
    ("window", &["customer_service", "free_entry_point"]),
];

/// `(where, expression)` of every PromQL expression of the alert rules and the dashboard.
fn promql_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let alerts = yaml(&deploy().join("prometheus/alerts.yml"));
    for group in array(&alerts, "/groups", "alerts.yml") {
        for rule in array(group, "/rules", "alerts.yml group") {
            let name = rule
                .get("alert")
                .or_else(|| rule.get("record"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            out.push((
                format!("alert rule {name}"),
                text(rule, "/expr", name).to_owned(),
            ));
        }
    }
    let dashboard = json(&deploy().join("grafana/dashboards/windowkeeper.json"));
    let mut panels: Vec<&Value> = Vec::new();
    for panel in array(&dashboard, "/panels", "dashboard") {
        panels.push(panel);
        panels.extend(
            panel
                .get("panels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for panel in panels {
        let title = panel.get("title").and_then(Value::as_str).unwrap_or("?");
        let mut expressions = Vec::new();
        strings_under_key(panel, "expr", &mut expressions);
        out.extend(
            expressions
                .into_iter()
                .map(|e| (format!("dashboard panel {title:?}"), e)),
        );
    }
    let mut variables = Vec::new();
    if let Some(templating) = dashboard.get("templating") {
        strings_under_key(templating, "query", &mut variables);
    }
    out.extend(
        variables
            .into_iter()
            .map(|q| ("dashboard variable".to_owned(), q)),
    );
    out
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Identifiers starting with `windowkeeper_` in a PromQL expression: a plain scan, since
/// promtool checks the syntax but cannot list the metric names (quoted text is scanned too; no
/// label value here is spelled like a metric).
fn windowkeeper_metrics(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in expr.match_indices("windowkeeper_") {
        if expr[..i].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let name: String = expr[i..].chars().take_while(|c| is_name_char(*c)).collect();
        names.insert(name);
    }
    names
}

/// `label op "value"` matchers of the labels windowkeeper exports, as (label, values).
fn label_matchers(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (label, _) in LABEL_VALUES {
        for (i, _) in expr.match_indices(label) {
            if expr[..i].chars().next_back().is_some_and(is_name_char) {
                continue;
            }
            let rest = expr[i + label.len()..].trim_start();
            let Some(rest) = ["=~", "!~", "!=", "="]
                .iter()
                .find_map(|op| rest.strip_prefix(op))
            else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let value = rest.split('"').next().unwrap_or_default();
            out.push((
                label.to_string(),
                value.split('|').map(str::to_owned).collect(),
            ));
        }
    }
    out
}

#[test]
fn alert_rules_and_dashboard_are_well_formed() {
    let alerts = yaml(&deploy().join("prometheus/alerts.yml"));
    let prometheus = yaml(&deploy().join("prometheus/prometheus.yml"));
    let jobs: BTreeSet<&str> = array(&prometheus, "/scrape_configs", "prometheus.yml")
        .iter()
        .filter_map(|j| j.get("job_name").and_then(Value::as_str))
        .collect();
    let mut names = BTreeSet::new();
    for group in array(&alerts, "/groups", "alerts.yml") {
        for rule in array(group, "/rules", "alerts.yml group") {
            let name = text(rule, "/alert", "alert rule");
            assert!(
                names.insert(name.to_owned()),
                "alert {name} is defined twice"
            );
            assert!(
                !text(rule, "/for", name).is_empty(),
                "alert {name} needs `for:`"
            );
            let severity = text(rule, "/labels/severity", name);
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "alert {name}: severity {severity}"
            );
            for annotation in ["summary", "description"] {
                let pointer = format!("/annotations/{annotation}");
                assert!(
                    !text(rule, &pointer, name).trim().is_empty(),
                    "alert {name} needs annotation {annotation}"
                );
            }
            let expr = text(rule, "/expr", name);
            for (i, _) in expr.match_indices("job=\"") {
                let job = expr[i + 5..].split('"').next().unwrap_or_default();
                assert!(
                    jobs.contains(job),
                    "alert {name} uses job {job:?}, which prometheus.yml does not scrape"
                );
            }
        }
    }
    for required in [
        "signature_failures",
        "kafka_errors_total{operation=\"publish\"}",
        "outcome=\"unavailable\"",
        "input_lag_seconds",
        "timer_lateness_seconds_bucket",
        "up{job=\"windowkeeper-tracker\"} == 0",
    ] {
        assert!(
            promql_expressions()
                .iter()
                .any(|(at, e)| at.starts_with("alert") && e.contains(required)),
            "no alert rule uses {required}"
        );
    }

    let dashboard = json(&deploy().join("grafana/dashboards/windowkeeper.json"));
    assert_eq!(dashboard["schemaVersion"], 39, "dashboard schemaVersion");
    for panel in array(&dashboard, "/panels", "dashboard") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel.get("title").and_then(Value::as_str).unwrap_or("?");
        assert_eq!(
            panel.pointer("/datasource/uid"),
            Some(&Value::from("prometheus")),
            "panel {title:?} data source"
        );
        let targets = array(panel, "/targets", title);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            assert_eq!(
                target.pointer("/datasource/uid"),
                Some(&Value::from("prometheus")),
                "panel {title:?} target"
            );
            assert!(
                !text(target, "/expr", title).is_empty(),
                "panel {title:?} has an empty query"
            );
        }
    }

    for (at, expr) in promql_expressions() {
        for (label, values) in label_matchers(&expr) {
            let allowed = LABEL_VALUES
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, v)| *v)
                .unwrap_or_default();
            for value in values {
                assert!(
                    allowed.contains(&value.as_str()),
                    "{at}: {label}=\"{value}\" is never exported (known: {allowed:?})"
                );
            }
        }
    }
}

/// Grafana's interval variables, replaced by values of the kind Grafana puts in their place.
const GRAFANA_INTERVALS: &[(&str, &str)] = &[
    ("${__rate_interval}", "1m"),
    ("$__rate_interval", "1m"),
    ("${__interval}", "15s"),
    ("$__interval", "15s"),
    ("${__range}", "1h"),
    ("$__range", "1h"),
];

#[test]
fn alert_rules_and_dashboard_queries_pass_promtool() {
    let promtool = tool("PROMTOOL", "promtool");
    promtool_check_rules(
        &promtool,
        "deploy/prometheus/alerts.yml",
        &deploy().join("prometheus/alerts.yml"),
    );

    // The PrometheusRule's groups, as the rule file the Prometheus Operator makes of them.
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = Manifests::load();
    let rules = manifests.of_kind("PrometheusRule");
    assert!(
        !rules.is_empty(),
        "no PrometheusRule under deploy/kubernetes"
    );
    for rule in rules {
        let name = text(rule, "/metadata/name", "PrometheusRule");
        let groups = rule
            .pointer("/spec/groups")
            .unwrap_or_else(|| panic!("PrometheusRule {name} has no spec.groups"));
        let path = dir.path().join(format!("prometheusrule-{name}.yml"));
        let file = serde_json::json!({ "groups": groups });
        std::fs::write(&path, file.to_string()).expect("write a rule file");
        promtool_check_rules(&promtool, &format!("PrometheusRule {name}'s rules"), &path);
    }

    // Each dashboard query as the expression of a recording rule.
    let queries: Vec<(String, String)> = promql_expressions()
        .into_iter()
        .filter(|(at, _)| at.starts_with("dashboard panel"))
        .collect();
    assert!(!queries.is_empty(), "the dashboard has no query");
    for (i, (at, expr)) in queries.iter().enumerate() {
        let expr = GRAFANA_INTERVALS
            .iter()
            .fold(expr.clone(), |e, (variable, value)| {
                e.replace(variable, value)
            });
        let path = dir.path().join(format!("dashboard-query-{i}.yml"));
        let file = serde_json::json!({
            "groups": [{ "name": "dashboard", "rules": [{ "record": "dashboard:query", "expr": expr }] }]
        });
        std::fs::write(&path, file.to_string()).expect("write a rule file");
        promtool_check_rules(&promtool, &format!("{at}'s query `{expr}`"), &path);
    }
}

/// Names PromQL can query, from a Prometheus text / OpenMetrics scrape, and the families.
fn queryable_names(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(family), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            families.insert(family.to_owned());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            families.extend(rest.split_whitespace().next().map(str::to_owned));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let sample: String = line.chars().take_while(|c| is_name_char(*c)).collect();
            names.insert(sample);
        }
    }
    (names, families)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    // Fail on a malformed file before starting anything.
    let expressions = promql_expressions();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (at, expr) in &expressions {
        for name in windowkeeper_metrics(expr) {
            used.entry(name).or_default().insert(at.clone());
        }
    }
    assert!(
        used.len() >= 10,
        "the dashboard and alerts should query windowkeeper's metrics, found {used:?}"
    );

    let broker = Broker::shared();
    let app = App::spawn_ready(AppOptions::new(
        "run",
        &broker.bootstrap(),
        &unique_prefix("deploy"),
    ))
    .await;
    // One accepted webhook, so the labelled series exist as well as the families.
    let response = post_signed(&app.webhook_url(), &fixture("text-message.json")).await;
    assert_eq!(response.status(), 200, "{}", app.stderr());
    let scrape = app.metrics().await;
    let (names, families) = queryable_names(&scrape);
    assert!(
        names.contains("windowkeeper_webhook_requests_total"),
        "the scrape should have the accepted request:\n{scrape}"
    );

    let unknown: Vec<String> = used
        .iter()
        .filter(|(name, _)| !names.contains(*name))
        .map(|(name, at)| {
            let family = families.iter().find(|f| name.starts_with(f.as_str()));
            let hint = match family {
                Some(f) => format!(" (family {f} exists: check its suffix)"),
                None => String::new(),
            };
            format!(
                "{name}{hint}, used by {}",
                at.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    let exported: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("windowkeeper_"))
        .collect();
    assert!(
        unknown.is_empty(),
        "metrics the dashboard or alert rules query that windowkeeper does not export:\n  {}\n\
         exported:\n  {}",
        unknown.join("\n  "),
        exported.join("\n  ")
    );

    // And the other way round: every exported family has a place on the dashboard.
    let dashboard_metrics: BTreeSet<String> = expressions
        .iter()
        .filter(|(at, _)| at.starts_with("dashboard"))
        .flat_map(|(_, e)| windowkeeper_metrics(e))
        .collect();
    let missing: Vec<&String> = families
        .iter()
        .filter(|f| f.starts_with("windowkeeper_"))
        .filter(|f| !dashboard_metrics.iter().any(|m| m.starts_with(f.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "exported metric families no dashboard panel shows: {missing:?}"
    );
}
