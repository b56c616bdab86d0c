#!/usr/bin/env python3
"""Static checks of everything Docker and Kubernetes would run, since no engine runs here.

- docker-compose.yml validates against the Compose Specification schema (.ci/schemas);
- every file or folder it mounts, builds from or points at exists; build targets exist in the
  Dockerfile;
- every command, flag and environment variable compose, Kubernetes and the Dockerfile hand to our
  binaries is one the binaries accept (checked against their own `--help`);
- the Dockerfile builds the packages and binaries the workspace defines and the README names;
- the Prometheus config passes `promtool check config`; the Grafana dashboards and the Jaeger
  config parse; the Kubernetes manifests validate against their schemas.

Usage: static_checks.py BIN_DIR   (BIN_DIR holds built reservation-service and loadtest)
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, ".ci", "schemas", "compose-spec.json")
BINARIES = {"reservation-service", "loadtest"}
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def ok(msg):
    print(f"ok: {msg}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def check_compose_schema():
    if not os.path.exists(SCHEMA):
        fail(f"compose schema not found at {SCHEMA}")
        return
    r = run(["check-jsonschema", "--schemafile", SCHEMA, os.path.join(ROOT, "docker-compose.yml")])
    if r.returncode != 0:
        fail("docker-compose.yml does not validate:\n" + r.stdout + r.stderr)
    else:
        ok("docker-compose.yml validates against the Compose Specification")


def dockerfile_stages():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    return text, set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))


def help_text(bin_dir, binary, subcommand=None):
    cmd = [os.path.join(bin_dir, binary)] + ([subcommand] if subcommand else []) + ["--help"]
    r = run(cmd)
    if r.returncode != 0:
        fail(f"`{' '.join(cmd[1:])}` is not accepted by {binary}: {r.stderr.strip()}")
        return None
    return r.stdout


def check_invocation(bin_dir, binary, args, env, where):
    """args: the argv after the binary name; env: variable names given to the container."""
    sub = args[0] if args and not args[0].startswith("-") else None
    text = help_text(bin_dir, binary, sub)
    if text is None:
        return
    for arg in args[1:] if sub else args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            if not re.search(re.escape(flag) + r"[ =,\n]", text):
                fail(f"{where}: `{binary} {sub or ''}` has no flag {flag}")
    known_env = set(re.findall(r"\[env: ([A-Z0-9_]+)", text))
    if sub:
        top = help_text(bin_dir, binary) or ""
        known_env |= set(re.findall(r"\[env: ([A-Z0-9_]+)", top))
    for name in env:
        if name.startswith("OTEL_"):
            continue  # read by the OpenTelemetry SDK conventions; checked by the tracing tests
        if name not in known_env:
            fail(f"{where}: {binary} {sub or ''} does not read env {name}")
    ok(f"{where}: `{binary} {' '.join(args)}` matches the binary's --help")


def check_compose(bin_dir):
    compose = yaml.safe_load(open(os.path.join(ROOT, "docker-compose.yml")))
    text, stages = dockerfile_stages()
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            ctx = os.path.join(ROOT, build.get("context", "."))
            if not os.path.isdir(ctx):
                fail(f"compose {name}: build context {ctx} missing")
            target = build.get("target")
            if target and target not in stages:
                fail(f"compose {name}: Dockerfile has no stage {target}")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith("./") and not src.startswith("./reports"):
                if not os.path.exists(os.path.join(ROOT, src)):
                    fail(f"compose {name}: mounted {src} does not exist")
        if build:
            binary = {"service": "reservation-service", "loadtest": "loadtest"}[build["target"]]
            args = [a for a in svc.get("command", [])]
            args = [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", a) for a in args]
            env = list((svc.get("environment") or {}).keys())
            check_invocation(bin_dir, binary, args, env, f"compose {name}")
    ok("compose mounts, build contexts and targets exist")


def check_dockerfile():
    text, stages = dockerfile_stages()
    meta = json.loads(run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT).stdout)
    bins = {(p["name"], t["name"]) for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
    joined = text.replace("\\\n", " ")
    build = re.search(r"cargo build --release[^\n]*", joined).group(0)
    pairs = re.findall(r"-p\s+(\S+)\s+--bin\s+(\S+)", build)
    for pkg, binary in pairs:
        if (pkg, binary) not in bins:
            fail(f"Dockerfile builds {pkg}/{binary}, which the workspace does not define")
    built = {b for _, b in pairs}
    if built != BINARIES:
        fail(f"Dockerfile builds {built}, expected {BINARIES}")
    for binary in BINARIES:
        if f"/out/{binary}" not in text:
            fail(f"Dockerfile does not copy {binary} into an image")
    readme = open(os.path.join(ROOT, "README.md")).read()
    for binary in BINARIES:
        if binary not in readme:
            fail(f"README does not name {binary}")
    for stage in ("service", "loadtest"):
        if stage not in stages:
            fail(f"Dockerfile has no {stage} stage")
    if "USER 10001" not in text or "HEALTHCHECK" not in text:
        fail("Dockerfile: runtime images must run as a non-root user and have a healthcheck")
    ok(f"Dockerfile builds {sorted(built)} from the workspace's packages")


def check_prometheus():
    promtool = shutil.which("promtool")
    if not promtool:
        fail("promtool not installed (Debian package prometheus)")
        return
    r = run([promtool, "check", "config", os.path.join(ROOT, "deploy/prometheus/prometheus.yml")])
    if r.returncode != 0:
        fail("promtool check config failed:\n" + r.stdout + r.stderr)
    else:
        ok("promtool check config")


def check_grafana_and_jaeger():
    for path in glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json")):
        dash = json.load(open(path))
        if not dash.get("panels"):
            fail(f"{path}: no panels")
        ok(f"{os.path.relpath(path, ROOT)} parses ({len(dash['panels'])} panels)")
    for path in glob.glob(os.path.join(ROOT, "deploy/grafana/provisioning/**/*.yml"), recursive=True):
        yaml.safe_load(open(path))
    jaeger = os.path.join(ROOT, "deploy/jaeger/config.yaml")
    if not os.path.exists(jaeger):
        fail("deploy/jaeger/config.yaml missing")
        return
    cfg = yaml.safe_load(open(jaeger))
    for key in ("service", "receivers", "processors", "exporters"):
        if key not in cfg:
            fail(f"jaeger config has no {key} section")
    if "tail_sampling" not in (cfg.get("processors") or {}):
        fail("jaeger config has no tail_sampling processor")
    ok("deploy/jaeger/config.yaml parses and has tail sampling")


def check_kubernetes(bin_dir):
    files = sorted(glob.glob(os.path.join(ROOT, "deploy/k8s/*.yaml")))
    r = run(["kubernetes-validate", "--strict", *files])
    if r.returncode != 0:
        fail("kubernetes-validate failed:\n" + r.stdout + r.stderr)
    else:
        ok(f"kubernetes-validate: {len(files)} manifests")
    kust = yaml.safe_load(open(os.path.join(ROOT, "deploy/kustomization.yaml")))
    for res in kust["resources"]:
        if not os.path.exists(os.path.join(ROOT, "deploy", res)):
            fail(f"kustomization resource {res} missing")
    for gen in kust.get("configMapGenerator", []):
        for f in gen.get("files", []):
            if not os.path.exists(os.path.join(ROOT, "deploy", f.split("=", 1)[-1])):
                fail(f"kustomization file {f} missing")
    for path in files:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") not in ("Deployment", "Job"):
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                image = c["image"]
                if not image.startswith("leaklab/"):
                    continue
                binary = "loadtest" if "loadtest" in image else "reservation-service"
                env = [e["name"] for e in c.get("env", []) if e["name"] != "JOB_COMPLETION_INDEX"]
                if c.get("args"):
                    args = [re.sub(r"\$\([A-Z_]+\)", "0", a) for a in c["args"]]
                    check_invocation(bin_dir, binary, args, env, f"{os.path.basename(path)} {c['name']}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    bin_dir = sys.argv[1]
    check_compose_schema()
    check_compose(bin_dir)
    check_dockerfile()
    check_prometheus()
    check_grafana_and_jaeger()
    check_kubernetes(bin_dir)
    if failures:
        print(f"\n{len(failures)} static check(s) failed")
        sys.exit(1)
    print("\nall static checks passed")


if __name__ == "__main__":
    main()
