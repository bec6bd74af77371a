//! Builds small OCI image layouts for tests and the demo: real tar layers,
//! gzip, zstd or uncompressed, OCI or Docker schema 2 media types, one image
//! index per tag over the platforms asked for.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How layers are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// Which media types the image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Types {
    Oci,
    Docker,
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(b)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Write a blob into the layout; returns (digest, size).
pub fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let d = sha256(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&d[7..]), bytes).unwrap();
    (d, bytes.len() as u64)
}

/// A tar of `files` (path, content), deterministic.
pub fn layer_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_767_225_600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &content[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
        Compression::None => tar.to_vec(),
    }
}

fn layer_type(c: Compression, t: Types) -> &'static str {
    match (t, c) {
        (Types::Docker, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (Types::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Types::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Types::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
    }
}

/// One image to build.
pub struct ImageSpec<'a> {
    pub tag: &'a str,
    pub arches: &'a [&'a str],
    /// Layers: each a list of files. `{arch}` in a content is replaced.
    pub layers: Vec<Vec<(&'a str, String)>>,
    pub compression: Compression,
    pub types: Types,
}

/// Build an image index over `spec.arches` into the OCI layout at `layout`,
/// tagged `spec.tag`. Returns the index digest.
pub fn build_image(layout: &Path, spec: &ImageSpec) -> String {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (mt_manifest, mt_config, mt_index) = match spec.types {
        Types::Oci => (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ),
        Types::Docker => (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
    };
    let mut children = Vec::new();
    for arch in spec.arches {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for files in &spec.layers {
            let files: Vec<(&str, Vec<u8>)> =
                files.iter().map(|(p, c)| (*p, c.replace("{arch}", arch).into_bytes())).collect();
            let tar = layer_tar(&files);
            diff_ids.push(sha256(&tar));
            let (d, s) = put_blob(layout, &compress(&tar, spec.compression));
            layers.push(json!({"mediaType": layer_type(spec.compression, spec.types), "digest": d, "size": s}));
        }
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/app"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (cd, cs) = put_blob(layout, &serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": mt_manifest,
            "config": {"mediaType": mt_config, "digest": cd, "size": cs},
            "layers": layers,
        });
        let (md, ms) = put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
        children.push(json!({"mediaType": mt_manifest, "digest": md, "size": ms,
            "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = json!({"schemaVersion": 2, "mediaType": mt_index, "manifests": children});
    let (id, is) = put_blob(layout, &serde_json::to_vec(&index).unwrap());
    let index_path = layout.join("index.json");
    let mut top: Value = fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
    let entries = top["manifests"].as_array_mut().unwrap();
    entries.retain(|e| e["annotations"]["org.opencontainers.image.ref.name"] != spec.tag);
    // Layout tools list OCI types in index.json, whatever the blob is.
    entries.push(
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is,
        "annotations": {"org.opencontainers.image.ref.name": spec.tag}}),
    );
    fs::write(index_path, serde_json::to_vec(&top).unwrap()).unwrap();
    id
}

/// A small multi-arch stack: three images (one amd64-only, one with zstd
/// layers, one with Docker media types), sharing a base layer, and its
/// manifests and stack file. `release` changes the app image's content.
pub fn write_demo_stack(dir: &Path, release: u32) {
    let layouts = dir.join("layouts");
    let base: Vec<(&str, String)> = vec![
        ("etc/os-release", "NAME=tender-demo\nARCH={arch}\n".into()),
        ("bin/app", "#!/bin/sh\necho base {arch}\n".into()),
    ];
    let version = format!("1.{}.0", release - 1);
    build_image(
        &layouts.join("fleet/sensor-fusion"),
        &ImageSpec {
            tag: &version,
            arches: &["amd64", "arm64"],
            layers: vec![
                base.clone(),
                vec![
                    ("opt/fusion/model.bin", "weights ".repeat(4096)),
                    ("opt/fusion/config.toml", format!("release = {release}\n")),
                ],
            ],
            compression: Compression::Gzip,
            types: Types::Oci,
        },
    );
    build_image(
        &layouts.join("fleet/bridge-ui"),
        &ImageSpec {
            tag: "1.0.0",
            arches: &["amd64", "arm64"],
            layers: vec![
                base.clone(),
                vec![("srv/ui/index.html", "<h1>bridge {arch}</h1>\n".into())],
            ],
            compression: Compression::Zstd,
            types: Types::Oci,
        },
    );
    build_image(
        &layouts.join("fleet/ais-gateway"),
        &ImageSpec {
            tag: "1.0.0",
            arches: &["amd64"],
            layers: vec![vec![("usr/bin/ais", "ais gateway {arch}\n".into())]],
            compression: Compression::Gzip,
            types: Types::Docker,
        },
    );
    let stack = dir.join(format!("stack/v{release}"));
    fs::create_dir_all(&stack).unwrap();
    let reg = "shore.registry.example/fleet";
    // Its file sorts after the objects that need it: apply must order them.
    fs::write(
        stack.join("namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: awareness}\n",
    )
    .unwrap();
    fs::write(
        stack.join("sensor-fusion.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: sensor-fusion, namespace: awareness}}\nspec:\n  \
             selector: {{matchLabels: {{app: sensor-fusion}}}}\n  template:\n    metadata: {{labels: {{app: sensor-fusion}}}}\n    \
             spec:\n      nodeSelector: {{kubernetes.io/arch: arm64}}\n      containers:\n      - name: fusion\n        \
             image: {reg}/sensor-fusion:{version}\n"
        ),
    )
    .unwrap();
    fs::write(
        stack.join("bridge-ui.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bridge-ui, namespace: awareness}}\nspec:\n  \
             selector: {{matchLabels: {{app: bridge-ui}}}}\n  template:\n    metadata: {{labels: {{app: bridge-ui}}}}\n    \
             spec:\n      initContainers:\n      - {{name: assets, image: \"{reg}/bridge-ui:1.0.0\"}}\n      containers:\n      \
             - {{name: ui, image: \"{reg}/bridge-ui:1.0.0\"}}\n      - {{name: ais, image: \"{reg}/ais-gateway:1.0.0\"}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: bridge-ui, namespace: awareness}}\n\
             spec: {{selector: {{app: bridge-ui}}, ports: [{{port: 80}}]}}\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join(format!("stack-v{release}.yaml")),
        format!(
            "name: awareness\nversion: {version}\nmanifests: [stack/v{release}/*.yaml]\nplatforms: [linux/amd64, linux/arm64]\n\
             sources:\n  - prefix: {reg}/\n    oci-layout: layouts/fleet/\n"
        ),
    )
    .unwrap();
}
