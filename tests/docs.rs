//! The documents against the code: `docs/bundle-format.md` names every
//! entry and every field the writer can emit (derived from the real types,
//! so a new field fails here until it is documented), every subcommand of
//! both binaries is in the README or the operator's guide, every command
//! line the guides show parses, and the CI examples run against a fixture
//! stack with the real binaries.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use clap::{CommandFactory, Parser};
use serde_json::Value;
use support::{Env, Registry, SHIP, workspace_root};
use tender_bundle::settings::Setting;
use tender_bundle::{
    BaseRef, BlobRecord, BlobRef, ChunkRecord, Descriptor, Digest, EntryName, ImageRecord,
    ManifestFile, PatchRecord, PlatformManifest, Signatures, StackId,
};
use tender_keys::Signature;
use tender_keys::keyring::{KeyRecord, Keyring, Roots, SignedKeyring, Signer};

fn read_doc(rel: &str) -> String {
    fs::read_to_string(workspace_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Identifiers written as code in a markdown text: inside backticks and
/// fenced blocks.
fn code_words(md: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut add = |s: &str| {
        for w in s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !w.is_empty() {
                words.insert(w.to_owned());
            }
        }
    };
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            add(line);
        } else {
            for span in line.split('`').skip(1).step_by(2) {
                add(span);
            }
        }
    }
    words
}

/// Every object key in `v`, except those of maps keyed by data (`skip`).
fn keys(v: &Value, skip: &[&str], out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                if !skip.contains(&k.as_str()) {
                    keys(v, skip, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, skip, out)),
        _ => {}
    }
}

/// A descriptor with every field and every optional field set, built from
/// struct literals: a new field does not compile until it is added here.
fn full_descriptor() -> Descriptor {
    let d = |s: &str| Digest::of(s.as_bytes());
    Descriptor {
        format: tender_bundle::FORMAT.into(),
        stack: StackId { name: "awareness".parse().unwrap(), version: "1.1.0".parse().unwrap() },
        sequence: 2,
        created: "2026-11-26T02:45:04Z".into(),
        manifests: vec![ManifestFile { path: "stack/a.yaml".into(), digest: d("m"), size: 1 }],
        images: vec![ImageRecord {
            reference: "shore.registry.example/fleet/a:1".into(),
            digest: d("i"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            size: 1,
            source_digest: d("s"),
            platforms: vec![PlatformManifest {
                platform: "linux/arm64".into(),
                manifest: d("pm"),
                config: d("pc"),
            }],
        }],
        oci_index: BlobRef { digest: d("x"), size: 1 },
        blobs: vec![
            BlobRecord {
                digest: d("big"),
                size: 10,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                part: 1,
                chunks: vec![ChunkRecord { part: 1, offset: 0, size: 10, digest: d("c") }],
                patch: None,
            },
            BlobRecord {
                digest: d("l"),
                size: 10,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                part: 2,
                chunks: vec![],
                patch: Some(PatchRecord {
                    digest: d("p"),
                    size: 3,
                    base: d("b"),
                    base_media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    base_size: 9,
                    segment: 10,
                    margin: 10,
                    frames: vec![3],
                    windows: vec![0],
                }),
            },
        ],
        parts: 2,
        bases: vec![BaseRef {
            stack: "awareness".parse().unwrap(),
            version: "1.0.0".parse().unwrap(),
            sequence: 1,
        }],
        expires: Some("2027-01-01T00:00:00Z".into()),
        settings: vec![Setting {
            name: "VESSEL_NAME".parse().unwrap(),
            description: Some("d".into()),
            required: true,
            pattern: Some(".*".into()),
            default: Some("x".into()),
            secret: true,
        }],
    }
}

fn full_keyring() -> SignedKeyring {
    let key = KeyRecord { keyid: "a".repeat(64).parse().unwrap(), public_key: "AAAA".into() };
    SignedKeyring {
        signed: Keyring {
            format: tender_keys::keyring::KEYRING_FORMAT.into(),
            version: 3,
            created: "2026-11-20T09:00:00Z".into(),
            roots: Roots { keys: vec![key.clone()], threshold: 1 },
            signers: vec![Signer {
                key: key.clone(),
                stacks: vec!["awareness".into()],
                expires: Some("2027-11-20T09:00:00Z".into()),
                cluster_scope: true,
            }],
            revoked: vec![key.keyid.clone()],
            thresholds: [("awareness".to_owned(), 2)].into_iter().collect(),
        },
        signatures: vec![Signature { keyid: key.keyid, sig: "c2ln".into() }],
    }
}

#[test]
fn bundle_format_documents_every_entry_and_field_the_writer_emits() {
    let md = read_doc("docs/bundle-format.md");
    let words = code_words(&md);
    let mut missing = Vec::new();

    // Every entry name, with the digest and offset as the table writes them.
    let dg = Digest::of(b"x");
    for e in [
        EntryName::Descriptor,
        EntryName::Signatures,
        EntryName::Part,
        EntryName::Keyring,
        EntryName::OciLayout,
        EntryName::Index,
        EntryName::Blob(dg.clone()),
        EntryName::Chunk(dg.clone(), 7),
        EntryName::Patch(dg.clone()),
    ] {
        let name = e.path().replace(dg.hex(), "<hex>").replace("/7", "/<offset>");
        if !md.contains(&format!("`{name}`")) {
            missing.push(format!("entry {name}"));
        }
    }
    // The detached signature file beside a bundle and beside parts.
    for (bundle, sig) in [("FILE", "FILE.sig"), ("NAME.tender.001", "NAME.tender.sig")] {
        let made = tender_bundle::detached_sig_path(Path::new(bundle));
        assert_eq!(made, Path::new(sig));
        if !md.contains(&format!("`{sig}`")) {
            missing.push(format!("detached signature file {sig}"));
        }
    }

    // Every field of a descriptor, a keyring and a signatures entry.
    let mut fields = BTreeSet::new();
    keys(&serde_json::to_value(full_descriptor()).unwrap(), &[], &mut fields);
    keys(&serde_json::to_value(full_keyring()).unwrap(), &["thresholds"], &mut fields);
    let sigs = Signatures { signatures: full_keyring().signatures };
    keys(&serde_json::to_value(&sigs).unwrap(), &[], &mut fields);
    for f in &fields {
        if !words.contains(f) {
            missing.push(format!("field {f}"));
        }
    }

    // The published artifact: its fields, media types and annotations.
    let d = full_descriptor();
    let raw = serde_json::to_vec(&d).unwrap();
    let kr = full_keyring().to_bytes();
    let manifest =
        tender_bundle::artifact::artifact_manifest(&d, &raw, b"{}", Some(&kr), &[(dg.clone(), 1)]);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let mut fields = BTreeSet::new();
    keys(&manifest, &["annotations"], &mut fields);
    for f in &fields {
        if !words.contains(f) {
            missing.push(format!("artifact field {f}"));
        }
    }
    let mut literals: Vec<String> =
        manifest["annotations"].as_object().unwrap().keys().cloned().collect();
    literals.push(manifest["artifactType"].as_str().unwrap().to_owned());
    literals.push(manifest["config"]["mediaType"].as_str().unwrap().to_owned());
    for l in manifest["layers"].as_array().unwrap() {
        literals.push(l["mediaType"].as_str().unwrap().to_owned());
    }
    for l in literals {
        if !md.contains(&format!("`{l}`")) {
            missing.push(format!("artifact value {l}"));
        }
    }
    assert!(missing.is_empty(), "docs/bundle-format.md does not document: {missing:#?}");
}

/// Every subcommand path of a clap command: `trust add`, `gc`, ...
fn subcommands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands() {
        let path = format!("{prefix}{}", sub.get_name()).trim().to_owned();
        out.push(path.clone());
        subcommands(sub, &format!("{path} "), out);
    }
}

#[test]
fn every_subcommand_is_in_the_readme_or_the_operators_guide() {
    let readme = read_doc("README.md");
    let operator = read_doc("docs/operator.md");
    let mut missing = Vec::new();
    for (bin, cmd) in [
        ("tender-ship", tender_cli::ship::Cli::command()),
        ("tender-shore", tender_cli::shore::Cli::command()),
    ] {
        let mut paths = Vec::new();
        subcommands(&cmd, "", &mut paths);
        for p in paths {
            let full = format!("{bin} {p}");
            let documented = readme.contains(&format!("`{p}"))
                || readme.contains(&full)
                || operator.contains(&full);
            if !documented {
                missing.push(full);
            }
        }
    }
    assert!(missing.is_empty(), "not in README.md or docs/operator.md: {missing:#?}");
}

/// Split a shell command line into words: quotes kept together, stops at
/// a comment or at the first `|`, `>`, `<`, `&&`, `;` or `&`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '#') if !any && cur.is_empty() => break,
            (None, '|' | '>' | '<' | ';' | '&') => break,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn every_command_line_the_guides_show_parses() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for page in [
        "README.md",
        "docs/install.md",
        "docs/operator.md",
        "docs/troubleshooting.md",
        "docs/ci.md",
        "docs/ship.md",
    ] {
        let md = read_doc(page);
        let mut fenced = false;
        let mut lines = Vec::new();
        for line in md.lines() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            } else if fenced {
                lines.push((true, line.trim().trim_start_matches("$ ").to_owned()));
            } else {
                // Inline code that is a whole command.
                lines.extend(
                    line.split('`')
                        .skip(1)
                        .step_by(2)
                        .filter(|s| s.starts_with("tender-ship ") || s.starts_with("tender-shore "))
                        .map(|s| (false, s.to_owned())),
                );
            }
        }
        for (whole, line) in lines {
            // Placeholders the pages write for typed values.
            let words: Vec<String> = shell_words(&line)
                .into_iter()
                .filter(|w| !(w.starts_with('[') && w.ends_with(']')))
                .map(|w| match w.trim_start_matches('$') {
                    "KEYID" | "OLD_KEYID" => "a".repeat(64),
                    "STACK" => "awareness".into(),
                    "VERSION" => "1.0.0".into(),
                    "N" | "K" => "2".into(),
                    _ => w,
                })
                .collect();
            let Some(bin) = words.first() else { continue };
            // `target/debug/tender-ship`, `$TENDER/tender-shore`: the same.
            let bin = bin.rsplit('/').next().unwrap_or(bin);
            let parsed = match bin {
                "tender-ship" => tender_cli::ship::Cli::try_parse_from(&words).map(|_| ()),
                "tender-shore" => tender_cli::shore::Cli::try_parse_from(&words).map(|_| ()),
                _ => continue,
            };
            seen += 1;
            if let Err(e) = parsed {
                use clap::error::ErrorKind::*;
                // Inline, `tender-ship verify` names a command: its
                // arguments may be left out, nothing else may be wrong.
                let named_only = !whole
                    && matches!(
                        e.kind(),
                        MissingRequiredArgument | DisplayHelpOnMissingArgumentOrSubcommand
                    );
                if !matches!(e.kind(), DisplayHelp | DisplayVersion) && !named_only {
                    bad.push(format!("{page}: {line}\n  {}", e.kind()));
                }
            }
        }
    }
    assert!(seen > 50, "only {seen} command lines found");
    assert!(bad.is_empty(), "command lines that do not parse:\n{}", bad.join("\n"));
}

/// A step of a CI example: where it is, and its shell text.
struct Step {
    file: &'static str,
    name: String,
    script: String,
}

/// The `script:` of each job of gitlab-ci.yml: one step per job, its
/// lines run in one shell as GitLab does, less the lines [`SKIPPED`] names.
fn gitlab_steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut job = String::new();
    let mut in_script = false;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') && !line.starts_with('#') {
            job = line.trim_end_matches(':').to_owned();
            in_script = false;
        } else if line == "  script:" {
            in_script = true;
            steps.push(Step { file: "gitlab-ci.yml", name: job.clone(), script: String::new() });
        } else if in_script && let Some(cmd) = line.strip_prefix("    - ") {
            let step = steps.last_mut().unwrap();
            match SKIPPED.iter().find(|(f, pat)| *f == step.file && cmd.contains(pat)) {
                Some((_, pat)) => eprintln!("gitlab-ci.yml: {job}: skipped line ({pat}): {cmd}"),
                None => {
                    step.script.push_str(cmd);
                    step.script.push('\n');
                }
            }
        } else if !line.starts_with("    ") {
            in_script = false;
        }
    }
    // A job whose every line is skipped is itself skipped (below).
    for s in &mut steps {
        if s.script.is_empty() {
            s.script = "skipped: every line needs docker or a network".into();
        }
    }
    steps
}

/// The steps of github-actions.yml: `run:` (inline or block) with the
/// step's `env:` exported first; `uses:` steps as a script `uses X`.
/// `${{ secrets.X }}` becomes `$SECRET_X`, `${{ env.X }}` becomes `$X`.
fn github_steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut env: Vec<String> = Vec::new();
    let mut block = false;
    let mut section = "";
    for line in text.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if block && (indent >= 10 || t.is_empty()) {
            let last = steps.last_mut().unwrap();
            last.script.push_str(line.get(10..).unwrap_or(""));
            last.script.push('\n');
            continue;
        }
        block = false;
        if let Some(name) = t.strip_prefix("- name: ").filter(|_| indent == 6) {
            steps.push(Step {
                file: "github-actions.yml",
                name: name.into(),
                script: String::new(),
            });
            env.clear();
            section = "";
        } else if indent == 8 && t == "env:" {
            section = "env";
        } else if indent == 8
            && let Some(uses) = t.strip_prefix("uses: ")
        {
            steps.last_mut().unwrap().script = format!("uses {uses}");
        } else if indent == 8
            && let Some(run) = t.strip_prefix("run: ")
        {
            let last = steps.last_mut().unwrap();
            last.script = env.join("");
            if run == "|" {
                block = true;
            } else {
                last.script.push_str(run);
                last.script.push('\n');
            }
        } else if indent == 10 && section == "env" {
            let (k, v) = t.split_once(": ").unwrap();
            env.push(format!("export {k}=\"{v}\"\n"));
        } else if indent == 8 {
            section = "";
        }
    }
    for s in &mut steps {
        let mut out = s.script.clone();
        while let Some(start) = out.find("${{") {
            let end = start + out[start..].find("}}").unwrap() + 2;
            let expr = out[start + 3..end - 2].trim().to_owned();
            let var = if let Some(x) = expr.strip_prefix("secrets.") {
                format!("$SECRET_{x}")
            } else if let Some(x) = expr.strip_prefix("env.") {
                format!("${x}")
            } else {
                panic!("github-actions.yml: expression {expr} the test does not know")
            };
            out.replace_range(start..end, &var);
        }
        s.script = out;
    }
    steps
}

/// Steps that need docker, a network or an action runner, skipped by name;
/// every other step runs, and a step neither run nor listed fails the test.
const SKIPPED: &[(&str, &str)] = &[
    ("gitlab-ci.yml", "skipped: every line needs docker or a network"),
    ("gitlab-ci.yml", "docker buildx"),
    ("gitlab-ci.yml", "skopeo copy --all \"docker://docker.io"),
    ("github-actions.yml", "uses actions/checkout"),
    ("github-actions.yml", "uses docker/setup-buildx-action"),
    ("github-actions.yml", "docker buildx build"),
    ("github-actions.yml", "skopeo copy --all \"docker://docker.io"),
    ("github-actions.yml", "uses actions/upload-artifact"),
];

/// The fixture repository a CI job would check out: the demo stack, its
/// OCI layouts, a root-signed keyring naming the CI and release manager
/// keys with a threshold of 2. Returns the secrets, as CI gives them.
fn ci_fixture(env: &Env) -> Vec<(String, String)> {
    for name in ["root", "rm"] {
        env.shore(&["keygen", "--out", name]).ok();
    }
    fs::create_dir_all(env.path().join("keys")).unwrap();
    fs::copy(env.path().join("root.pub"), env.path().join("keys/root.pub")).unwrap();
    let kr = "keys/keyring.json";
    env.shore(&["keyring", "init", "--root", "root.pub", "--out", kr]).ok();
    for k in ["ci.pub", "rm.pub"] {
        env.shore(&[
            "keyring",
            "add-signer",
            kr,
            k,
            "--stacks",
            "awareness",
            "--expires-in",
            "365days",
        ])
        .ok();
    }
    env.shore(&["keyring", "threshold", kr, "awareness", "2"]).ok();
    env.shore(&["keyring", "sign", kr, "--key", "root.key"]).ok();
    let key = |k: &str| fs::read_to_string(env.path().join(k)).unwrap();
    vec![
        ("TENDER_SIGNING_KEY".into(), key("ci.key")),
        ("RM_SIGNING_KEY".into(), key("rm.key")),
        ("SECRET_TENDER_SIGNING_KEY".into(), key("ci.key")),
        ("SECRET_RM_SIGNING_KEY".into(), key("rm.key")),
        ("REGISTRY_AUTH".into(), "{}".into()),
        ("SECRET_REGISTRY_USER".into(), "ci".into()),
        ("SECRET_REGISTRY_PASSWORD".into(), "secret".into()),
    ]
}

fn run_ci_example(file: &'static str, steps: Vec<Step>) {
    let env = Env::new();
    let secrets = ci_fixture(&env);
    let registry = Registry::start();
    let bin_dir = Path::new(SHIP).parent().unwrap();
    let home = env.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let mut ran = 0;
    for step in &steps {
        if let Some((_, pat)) =
            SKIPPED.iter().find(|(f, pat)| *f == step.file && step.script.contains(pat))
        {
            eprintln!("{file}: {}: skipped ({pat})", step.name);
            continue;
        }
        assert!(
            !step.script.starts_with("uses ") && !step.script.trim().is_empty(),
            "{file}: step {:?} is neither run nor listed in SKIPPED: {}",
            step.name,
            step.script
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(&step.script)
            .current_dir(env.path())
            .env("HOME", &home)
            .env("TENDER", bin_dir)
            .env("TENDER_SHORE_STATE", env.path().join("shore-state"))
            // A step that loses its `export TENDER_STORE` must not reach
            // the machine's own store: this path must stay absent.
            .env("TENDER_STORE", env.path().join("lost-store"))
            .env("STACK_FILE", "stack-v1.yaml")
            .env("STACK", "awareness")
            .env("VERSION", "1.0.0")
            .env("IMAGE_PREFIX", "shore.registry.example/fleet")
            .env("REGISTRY", registry.host())
            .env("SPLIT", "24K")
            .env("EXPIRES_IN", "180days")
            .env("CI_COMMIT_TAG", "v1.0.0");
        for (k, v) in &secrets {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{file}: step {:?} failed:\n{}\nstdout: {}\nstderr: {}",
            step.name,
            step.script,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 2, "{file}: only {ran} steps ran");
    assert!(!env.path().join("lost-store").exists(), "{file}: a step used no store of its own");
    // What the pipeline made: a whole bundle and parts, each with the
    // release manager's signature beside it, and the published artifact.
    for f in ["dist/awareness-1.0.0.tender", "dist/awareness-1.0.0.tender.sig"] {
        assert!(env.path().join(f).is_file(), "{file}: {f} missing");
    }
    assert!(env.path().join("sticks/awareness-1.0.0.tender.sig").is_file(), "{file}");
    assert!(env.path().join("sticks/awareness-1.0.0.tender.002").is_file(), "{file}: split");
    // A ship that pins only the root key pulls what was published.
    let store = env.path().join("ship-store");
    let ship = |args: &[&str]| {
        Command::new(SHIP).arg("--store").arg(&store).args(args).current_dir(env.path()).output()
    };
    assert!(ship(&["trust", "add", "keys/root.pub", "--root"]).unwrap().status.success());
    let pulled = ship(&["pull", &format!("{}/fleet/awareness:1.0.0", registry.host())]).unwrap();
    assert!(pulled.status.success(), "{file}: {}", String::from_utf8_lossy(&pulled.stderr));
}

#[test]
fn gitlab_ci_example_runs_against_the_fixture() {
    let text = read_doc("examples/ci/gitlab-ci.yml");
    run_ci_example("gitlab-ci.yml", gitlab_steps(&text));
}

#[test]
fn github_actions_example_runs_against_the_fixture() {
    let text = read_doc("examples/ci/github-actions.yml");
    run_ci_example("github-actions.yml", github_steps(&text));
}

/// The examples every command's help ends with (and so its man page)
/// parse as the command line they show.
#[test]
fn every_help_example_parses() {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        if let Some(text) = cmd.get_after_help() {
            out.extend(
                text.to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("tender-") || l.starts_with("TENDER_"))
                    .map(str::to_owned),
            );
        }
        cmd.get_subcommands().for_each(|c| walk(c, out));
    }
    let mut bad = Vec::new();
    for (bin, cmd) in [
        ("tender-ship", tender_cli::ship::Cli::command()),
        ("tender-shore", tender_cli::shore::Cli::command()),
    ] {
        let mut examples = Vec::new();
        walk(&cmd, &mut examples);
        assert!(examples.len() > 10, "{bin}: {examples:?}");
        for line in examples {
            // `TENDER_SIGNING_KEY=... tender-shore pack ...`: the command.
            let words: Vec<String> =
                shell_words(&line).into_iter().skip_while(|w| w.contains('=')).collect();
            let parsed = match words.first().map(String::as_str) {
                Some("tender-ship") => tender_cli::ship::Cli::try_parse_from(&words).map(|_| ()),
                Some("tender-shore") => tender_cli::shore::Cli::try_parse_from(&words).map(|_| ()),
                _ => {
                    bad.push(format!("{bin}: {line}: not a command line"));
                    continue;
                }
            };
            if let Err(e) = parsed {
                bad.push(format!("{bin}: {line}: {}", e.kind()));
            }
        }
    }
    assert!(bad.is_empty(), "help examples that do not parse:\n{}", bad.join("\n"));
}
