//! Issue 31: the Kubernetes recipe in deploy/kubernetes/, tested as far as
//! it can be without a cluster: every manifest parses; every flag, port,
//! path, configuration key and file a manifest names exists in the binary
//! (it is run with the manifest's own arguments) and in the image; the
//! PrometheusRule holds the same rules as packaging/prometheus. (The
//! sidecar's life, a ConfigMap `..data` swap from 3 to 4 servers with
//! /readyz going 503 then 200, is tests/metrics.rs's Prometheus test.)

mod common;

use common::http;
use common::*;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of every manifest, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.display()));
            docs.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    docs
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    &docs.iter().find(|(_, d)| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes")).1
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|seq| seq.iter().map(|x| s(x).to_owned()).collect()).unwrap_or_default()
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The `--flags` in `args`.
fn flags(args: &[String]) -> Vec<&str> {
    args.iter().filter(|a| a.starts_with("--")).map(|a| a.split('=').next().unwrap()).collect()
}

/// The value after `flag` in `args`.
fn arg<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[i + 1]
}

/// `astaire SUBCOMMAND --help`.
fn help(subcommand: &str) -> String {
    let out = astaire(&[subcommand, "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_manifest_parses_and_names_its_kind() {
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().map(|(_, d)| s(&d["kind"])).collect();
    for k in ["ConfigMap", "Service", "StatefulSet", "Job", "PodMonitor", "PrometheusRule", "Kustomization"] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    for (file, d) in &docs {
        assert!(d["apiVersion"].as_str().is_some(), "{file}: no apiVersion");
        if d["kind"] != "Kustomization" {
            assert!(d["metadata"]["name"].as_str().is_some(), "{file}: no metadata.name");
        }
    }
    let kustomization = kind(&docs, "Kustomization");
    for r in strings(&kustomization["resources"]) {
        assert!(root().join("deploy/kubernetes").join(&r).exists(), "kustomization names {r}, which is missing");
    }
}

/// The RBAC-free sidecar: the flags it passes are the daemon's, its
/// probes and the Service and PodMonitor use the port it listens on, its
/// files are the ConfigMap's keys, and its `--local-name` is how
/// cluster_settings names each pod.
#[test]
fn the_sidecar_names_only_flags_ports_paths_and_keys_that_exist() {
    let docs = manifests();
    let sts = kind(&docs, "StatefulSet");
    let cm = kind(&docs, "ConfigMap");
    let astaire = container(sts, "astaire");
    assert!(astaire["command"].is_null(), "the image's entrypoint (astaire daemon) runs, given args only");
    let args = strings(&astaire["args"]);
    let daemon_help = help("daemon");
    for flag in flags(&args) {
        assert!(
            daemon_help.contains(&format!("{flag} ")) || daemon_help.contains(&format!("{flag}\n")),
            "astaire daemon has no {flag}"
        );
    }
    // The metrics port: the flag's, the container's, the probes', the Service's, the PodMonitor's.
    let listen = arg(&args, "--metrics-listen");
    assert_eq!(listen, "$(POD_IP):9150");
    let ports = astaire["ports"].as_sequence().unwrap();
    let metrics = ports.iter().find(|p| p["name"] == "metrics").expect("a port named metrics");
    assert_eq!(metrics["containerPort"].as_u64(), Some(9150));
    assert_eq!(astaire["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(astaire["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(astaire["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(astaire["livenessProbe"]["httpGet"]["port"], "metrics");
    let svc = kind(&docs, "Service");
    assert!(svc["spec"]["clusterIP"] == "None" && svc["spec"]["publishNotReadyAddresses"] == true);
    let svc_ports = svc["spec"]["ports"].as_sequence().unwrap();
    for p in svc_ports {
        let target = s(&p["targetPort"]);
        let all: Vec<&Value> = sts["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|c| c["ports"].as_sequence().unwrap().iter())
            .collect();
        assert!(all.iter().any(|cp| cp["name"] == target), "the Service's targetPort {target} is no container's port");
    }
    assert_eq!(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]);
    let pm = kind(&docs, "PodMonitor");
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!((s(&endpoint["port"]), s(&endpoint["path"])), ("metrics", "/metrics"));
    assert_eq!(pm["spec"]["selector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"]);

    // Files: the flags' paths are in the ConfigMap's mount, named by its keys.
    let mounts = astaire["volumeMounts"].as_sequence().unwrap();
    let mount_of = |volume: &str| s(&mounts.iter().find(|m| m["name"] == volume).unwrap()["mountPath"]).to_owned();
    let settings_dir = mount_of("cluster-settings");
    for flag in ["--cluster-settings", "--config"] {
        let path = Path::new(arg(&args, flag));
        assert_eq!(path.parent().unwrap(), Path::new(&settings_dir), "{flag} is outside the ConfigMap's mount");
        let key = path.file_name().unwrap().to_str().unwrap();
        assert!(cm["data"][key].as_str().is_some(), "{flag} {}: no ConfigMap key {key}", path.display());
    }
    assert!(mounts.iter().all(|m| m["subPath"].is_null()), "a subPath mount is never updated");
    assert_eq!(
        mount_of("run"),
        Path::new(astaire::daemon::control::DEFAULT_SOCKET).parent().unwrap().to_str().unwrap()
    );
    assert_eq!(mount_of("spill"), "/var/lib/astaire", "the image's STATE_DIRECTORY");

    // The node configuration's keys are the documented ones.
    let documented = std::fs::read_to_string(root().join("packaging/config.example")).unwrap();
    for line in s(&cm["data"]["config"]).lines().filter(|l| !l.trim().is_empty()) {
        let key = line.split('=').next().unwrap();
        assert!(documented.contains(&format!("{key}=")), "config key {key} is not in packaging/config.example");
    }
    // cluster_settings is valid, and lists the pods by the name the sidecar gives itself.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cluster_settings");
    std::fs::write(&settings, s(&cm["data"]["cluster_settings"])).unwrap();
    let loaded = astaire::view::ClusterSettings::load(&settings).expect("the ConfigMap's cluster_settings loads");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let local = arg(&args, "--local-name");
    let names: Vec<String> = (0..replicas).map(|i| local.replace("$(POD_NAME)", &format!("memcached-{i}"))).collect();
    assert_eq!(loaded.servers, names, "servers= are the StatefulSet's pods, as --local-name names them");
    let env: Vec<&str> = astaire["env"].as_sequence().unwrap().iter().map(|e| s(&e["name"])).collect();
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_IP"), "{env:?}");
}

/// The Job's command is in the image, its flags are `astaire resync`'s, and
/// each index names a pod.
#[test]
fn the_resize_job_names_only_flags_that_exist() {
    let docs = manifests();
    let job = kind(&docs, "Job");
    let c = container(job, "resync");
    assert_eq!(strings(&c["command"]), ["/usr/bin/astaire", "resync"]);
    let args = strings(&c["args"]);
    let resync_help = help("resync");
    for flag in flags(&args) {
        assert!(
            resync_help.contains(&format!("{flag} ")) || resync_help.contains(&format!("{flag}\n")),
            "astaire resync has no {flag}"
        );
    }
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(arg(&args, "--local-name"), "memcached-$(JOB_COMPLETION_INDEX).memcached:11211");
    assert_eq!(arg(&args, "--cluster-settings"), "/etc/clearwater/cluster_settings");
}

#[test]
fn the_prometheus_rule_holds_the_packaged_rules() {
    let docs = manifests();
    let rule = kind(&docs, "PrometheusRule");
    let packaged: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("packaging/prometheus/astaire-rules.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rule["spec"]["groups"], packaged["groups"],
        "deploy/kubernetes/prometheusrule.yaml and the packaged rules differ"
    );
}

/// The sidecar's arguments, as the manifest gives them, run the real
/// binary: the variables the kubelet expands are given loopback values,
/// the files are the ConfigMap's. Its probes and the PodMonitor's path
/// answer on the port.
#[test]
fn the_daemon_runs_with_the_manifests_arguments_and_answers_its_probes() {
    let docs = manifests();
    let sts = kind(&docs, "StatefulSet");
    let cm = kind(&docs, "ConfigMap");
    let astaire = container(sts, "astaire");
    let m = Memcached::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster_settings"), format!("servers={}\n", m.name())).unwrap();
    std::fs::write(dir.path().join("config"), s(&cm["data"]["config"])).unwrap();
    let port = free_port_pub();
    let args: Vec<String> = strings(&astaire["args"])
        .into_iter()
        .map(|a| {
            a.replace("$(POD_NAME).memcached:11211", &m.name())
                .replace("$(POD_IP):9150", &format!("127.0.0.1:{port}"))
                .replace("/etc/clearwater", dir.path().to_str().unwrap())
        })
        .collect();
    let control = dir.path().join("control");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    /// Killed however the test ends (a failed wait included).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Killed(
        Command::new(astaire_binary())
            .arg("daemon")
            .args(&args)
            .arg("--control-socket")
            .arg(&control)
            .args(["--nice", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    let daemon_log = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    let probes = [
        s(&astaire["readinessProbe"]["httpGet"]["path"]).to_owned(),
        s(&astaire["livenessProbe"]["httpGet"]["path"]).to_owned(),
        s(&kind(&docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["path"]).to_owned(),
    ];
    for path in &probes {
        wait_until(
            Duration::from_secs(15),
            &format!("{path} answering 200 on the manifest's port"),
            || http::get(&addr, path, "").is_ok_and(|r| r.status == 200),
            daemon_log,
        );
    }
}

/// The image holds every path the manifests name, runs `astaire daemon`
/// as its entrypoint, and as user 10001. Needs the image laid out by
/// scripts/image.sh (scripts/test.sh runs it first, then this test with
/// --ignored, and fails unless it ran and passed).
#[test]
#[ignore = "needs the image: scripts/image.sh, then cargo test --test kubernetes -- --ignored (scripts/test.sh does)"]
fn the_image_holds_every_path_the_manifests_name() {
    let image =
        std::env::var_os("ASTAIRE_TEST_IMAGE").map(PathBuf::from).unwrap_or_else(|| root().join("target/image"));
    assert!(image.join("rootfs").is_dir(), "no image at {}: run scripts/image.sh", image.display());
    let in_image = |p: &str| {
        let rel = p.trim_start_matches('/');
        image.join("rootfs").join(rel).exists() || image.join("state").join(rel).exists()
    };
    let docs = manifests();
    let sts = kind(&docs, "StatefulSet");
    let job = kind(&docs, "Job");
    assert!(in_image(&strings(&container(job, "resync")["command"])[0]));
    for workload in [sts, job] {
        for c in workload["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
            if !s(&c["image"]).contains("astaire") {
                continue;
            }
            for m in c["volumeMounts"].as_sequence().unwrap() {
                assert!(in_image(s(&m["mountPath"])), "{} is not in the image", s(&m["mountPath"]));
            }
        }
    }
    let containerfile = std::fs::read_to_string(root().join("packaging/container/Containerfile")).unwrap();
    assert!(containerfile.contains("ENTRYPOINT [\"/usr/bin/astaire\", \"daemon\"]"));
    assert!(containerfile.contains("USER 10001:10001"));
    assert!(containerfile.contains("ENV STATE_DIRECTORY=/var/lib/astaire"));
    let passwd = std::fs::read_to_string(image.join("rootfs/etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("astaire:x:10001:10001:")), "{passwd}");
    let sizes: u64 = walk(&image.join("rootfs")).iter().map(|p| p.metadata().unwrap().len()).sum();
    eprintln!("the image's files: {} bytes", sizes);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
