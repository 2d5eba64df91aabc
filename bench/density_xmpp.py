"""Memory per commune of the xmpp flavor: one Prosody with 10, 100, 1,000 communes on a lab host.

Each commune is what the deploy writes (relais.xmpp.config.render_tenant: a VirtualHost and its
group-chat component, with its own certificate) under the shared configuration of
render_main, but the communes are synthetic (`bench-0001.density.invalid`, ...): no inventory,
no accounts. A second Prosody runs beside the deployed one, as the prosody user, on other ports
and in its own directory (/var/lib/relais-bench/xmpp-density), and is stopped afterwards.

Figures: PSS (proportional set size, /proc/<pid>/smaps_rollup) once every host is active, CPU
used by the start-up (utime+stime). That adding a commune is a reload and not a restart is shown
by tests/lab/test_xmpp.py (same process, the other communes' sessions kept).
RELAIS_BENCH_NO_MUC=1 leaves the group-chat components out, to show what they cost.

    RELAIS_LAB_INSTANCE=... RELAIS_INVENTORY=... .venv/bin/python bench/density_xmpp.py [host] [counts...]
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relais.xmpp.config import (
    FEDERATION_CONFIG,
    TENANTS_DIR,
    HostSettings,
    render_federation,
    render_main,
    render_tenant,
)

BENCH_DIR = "/var/lib/relais-bench/xmpp-density"
PORT_BASE = 15000
Runner = Callable[[str, str | None], tuple[int, str]]  # (shell command, stdin) -> (rc, stdout)


def _domain(i: int) -> str:
    return f"bench-{i:04d}.density.invalid"


def _certificates(domains: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """A throwaway CA and one certificate per commune (domain and its conference component)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Relais density bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {}
    for domain in domains:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(domain), x509.DNSName(f"conference.{domain}")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        out[domain] = (chain, pem)
    return out


def _tenant_text(template: Any, domain: str, index: int, directory: str) -> str:
    tenant = template.model_copy(update={"id": f"b{index:04d}", "insee": f"b{index:04d}", "commune": domain,
                                         "domain": domain, "server_name": domain, "status": "active"})
    text = render_tenant(tenant).replace("/etc/relais/tls/", f"{directory}/tls/")
    if os.environ.get("RELAIS_BENCH_NO_MUC"):  # experiment: what the per-commune MUC component costs
        text = text.split("Component ")[0]
    return text


def _main_text(directory: str, monitor: list[str]) -> str:
    settings = HostSettings(private_address=None, metrics_port=PORT_BASE + 280, metrics_sources=monitor,
                            allowed=[])
    main = render_main(settings)
    overrides = "\n".join([
        "-- density bench: its own ports, data and socket, beside the deployed Prosody",
        f"c2s_ports = {{ {PORT_BASE + 222} }}",
        f"s2s_ports = {{ {PORT_BASE + 269} }}",
        "c2s_direct_tls_ports = { }",
        f'data_path = "{directory}/data"',
        f'certificates = "{directory}/tls"',
        f'pidfile = "{directory}/prosody.pid"',
        f'admin_socket = "{directory}/data/prosody.sock"',
        f'log = {{ info = "{directory}/prosody.log"; error = "{directory}/prosody.err"; }}',
        "",
    ])
    marker = "-- Federation allow-list and communes"
    main = main.replace(marker, overrides + marker)
    return (main.replace(FEDERATION_CONFIG, f"{directory}/federation.cfg.lua")
            .replace(TENANTS_DIR, f"{directory}/relais.d"))


def _tarball(files: dict[str, bytes]) -> str:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(out.getvalue()).decode()


def _files_for(template: Any, indices: Iterable[int], directory: str) -> dict[str, bytes]:
    indices = list(indices)
    domains = [_domain(i) for i in indices]
    files: dict[str, bytes] = {}
    for i, (domain, (chain, key)) in zip(indices, _certificates(domains).items(), strict=True):
        files[f"relais.d/b{i:04d}.cfg.lua"] = _tenant_text(template, domain, i, directory).encode()
        files[f"tls/{domain}/fullchain.pem"] = chain
        files[f"tls/{domain}/privkey.pem"] = key
    return files


def _push(run: Runner, directory: str, files: dict[str, bytes]) -> None:
    rc, out = run(f"base64 -d | tar -xzf - -C {directory} && chown -R root:prosody {directory} && "
                  f"chmod -R g+rX {directory}", _tarball(files))
    if rc != 0:
        raise RuntimeError(f"pushing bench files failed: {out}")


def _proc(run: Runner, pid: int) -> tuple[int, int]:
    """(PSS in KiB, CPU ticks) of a process."""
    rc, out = run(f"grep '^Pss:' /proc/{pid}/smaps_rollup; awk '{{print $14+$15}}' /proc/{pid}/stat", None)
    if rc != 0:
        raise RuntimeError(f"cannot read /proc/{pid}: {out}")
    lines = out.split("\n")
    return int(lines[0].split()[1]), int(lines[1])


def _wait_ready(run: Runner, pid: int, hosts: int, directory: str, timeout: float = 600) -> None:
    """Every host activated (counted in the log) and the CPU idle."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        _, out = run(f"grep -c 'Activated host\\|Loaded\\|Certificates loaded' {directory}/prosody.log "
                     f"|| true; ss -Hltn 'sport = :{PORT_BASE + 222}' | wc -l", None)
        listening = out.split("\n")[-1].strip() != "0"
        _, ticks = _proc(run, pid)
        if listening and ticks == last:
            return
        last = ticks
        time.sleep(2)
    raise RuntimeError("the bench Prosody did not settle")


def measure_one(run: Runner, template: Any, count: int, monitor: list[str]) -> dict[str, Any]:
    directory = f"{BENCH_DIR}/n{count}"
    run(f"rm -rf {directory} && mkdir -p {directory}/relais.d {directory}/data {directory}/tls && "
        f"chown -R prosody:prosody {directory}/data", None)
    files = _files_for(template, range(1, count + 1), directory)
    files["prosody.cfg.lua"] = _main_text(directory, monitor).encode()
    files["federation.cfg.lua"] = render_federation(HostSettings(None, 0, [], [])).encode()
    _push(run, directory, files)
    run(f"chown -R prosody:prosody {directory}/data", None)
    _, out = run(f"cd {directory} && (setsid runuser -u prosody -- prosody -F --config "
                  f"{directory}/prosody.cfg.lua < /dev/null > {directory}/stdout 2>&1 & echo $!)", None)
    launcher = int(out.strip().split()[-1])
    time.sleep(1)
    _, found = run(f"pgrep -P {launcher} -f 'prosody -F' || echo {launcher}", None)
    pid = int(found.split()[0])
    try:
        started = time.monotonic()
        _wait_ready(run, pid, count * 2, directory)
        elapsed = time.monotonic() - started
        pss, ticks = _proc(run, pid)
        _, hz = run("getconf CLK_TCK", None)
        _, activated = run(f"grep -c 'Activated host' {directory}/prosody.log || true", None)
        return {"communes": count, "hosts_in_log": int(activated.strip() or 0),
                "pss_mib": round(pss / 1024, 1),
                "startup_cpu_s": round(ticks / int(hz.strip() or 100), 2), "settle_wall_s": round(elapsed, 1)}
    finally:
        run(f"kill {pid} {launcher} 2>/dev/null; sleep 1; kill -9 {pid} {launcher} 2>/dev/null; "
            f"rm -rf {directory}", None)


def measure(run: Runner, template: Any, counts: Iterable[int] = (10, 100, 1000),
            monitor: list[str] | None = None) -> dict[str, Any]:
    """Memory per commune for each count; `run` executes a shell command on the lab host."""
    results = [measure_one(run, template, n, monitor or []) for n in counts]
    per_commune = []
    for a, b in itertools.pairwise(results):
        per_commune.append({"from": a["communes"], "to": b["communes"],
                            "pss_kib_per_commune": round((b["pss_mib"] - a["pss_mib"]) * 1024
                                                         / (b["communes"] - a["communes"]), 1)})
    return {"flavor": "xmpp", "results": results, "marginal": per_commune,
            "communes_per_gib": (round(1024 * 1024 / per_commune[-1]["pss_kib_per_commune"])
                                 if per_commune and per_commune[-1]["pss_kib_per_commune"] > 0 else None)}


def _lab_runner(host: str) -> Runner:
    from relais.cli.context import State, default_inventory, load_plan
    from relais.lab.lab import Lab

    lab = Lab(load_plan(State(inventory=default_inventory())))

    def run(command: str, stdin: str | None) -> tuple[int, str]:
        done = lab.exec(host, ["sh", "-c", command], timeout=900, input_text=stdin)
        return done.returncode, (done.stdout + done.stderr).strip()

    return run


def main(argv: list[str]) -> int:
    from relais.cli.context import State, default_inventory, load_plan

    plan = load_plan(State(inventory=default_inventory()))
    services = [s.host for s in plan.xmpp_services]
    host = argv[0] if argv and not argv[0].isdigit() else (services[-1] if services else "")
    counts = [int(a) for a in argv if a.isdigit()] or [10, 100, 1000]
    template = next(t for t in plan.tenants if t.flavor == "xmpp")
    monitor = [h.address for h in plan.hosts if "monitor" in h.roles and h.address]
    report = measure(_lab_runner(host), template, counts, monitor)
    report["host"] = host
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
