"""Memory per commune of the xmpp flavor: one Prosody with 10, 100, 1,000 communes on a lab host.

Each commune is exactly what the deploy writes: relais.xmpp.config.render_main for the shared
settings, render_tenant for the commune (its VirtualHost and its group-chat component, with its
own certificate), and Relais's Prosody modules from deploys/xmpp/templates. The communes are
synthetic (`bench-0001.density.invalid`, ...): no inventory, no accounts. A second Prosody runs
beside the deployed one, as the prosody user, on other ports and in its own directory
(/var/lib/relais-bench/xmpp-density), and is stopped afterwards.

Configurations (`--xmpp-configs`, the first one is the one reported):
- `production`: the files Relais renders;
- `naive`: the baseline of issue 9, measured in the same run: Debian's stock module list
  (its /etc/prosody/prosody.cfg.lua) on every VirtualHost, a MUC component with its archive per
  commune, Lua's default garbage collector, module code compiled per host (Prosody as shipped);
- experiments, each the production files with one change: `no-sharing` (without
  mod_relais_shared), `no-muc` (without the group-chat components), `generational-gc`,
  `one-certificate` (every commune uses the same certificate), `no-gc-tuning` and `gc-105-500`
  (Prosody's default collector settings), `gc-100-500`.

Figures: PSS (proportional set size, /proc/<pid>/smaps_rollup) once every host is active and the
CPU idle, CPU used by the start-up (utime+stime); then PSS after reloads (`--xmpp-reloads`, the
deploy's own admin-shell lines: `config:reload()` and host activation), the steady state a host
lives in once a commune has been added (the allocator keeps the high-water mark of the first
reload); the marginal cost per commune between counts, start-up and after reload. For the
reported configuration, `--xmpp-add` more communes added the way the deploy adds them (files
written, then the same reload): same process, PSS growth per added commune.

    RELAIS_LAB_INSTANCE=... RELAIS_INVENTORY=... .venv/bin/python bench/tenant_density.py --flavor xmpp
    .venv/bin/python bench/density_xmpp.py --xmpp-counts 10,100,1000 --xmpp-configs production,naive
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import itertools
import json
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
    LOCAL_MODULES,
    LOCAL_MODULES_DIR,
    OPEN_FILES_LIMIT,
    SHARED_MODULE,
    TENANTS_DIR,
    HostSettings,
    render_federation,
    render_main,
    render_tenant,
)

BENCH_DIR = "/var/lib/relais-bench/xmpp-density"
PORT_BASE = 15000
MODULES_SRC = Path(__file__).resolve().parents[1] / "deploys" / "xmpp" / "templates"
Runner = Callable[[str, str | None], tuple[int, str]]  # (shell command, stdin) -> (rc, stdout)
Edit = Callable[[str], str]

# Debian 12's /etc/prosody/prosody.cfg.lua (prosody 0.12.3-1+deb12u1), modules_enabled as shipped.
DEBIAN_MODULES = ("disco", "roster", "saslauth", "tls", "blocklist", "bookmarks", "carbons", "dialback",
                  "limits", "pep", "private", "smacks", "vcard4", "vcard_legacy", "csi_simple", "invites",
                  "invites_adhoc", "invites_register", "ping", "register", "time", "uptime", "version",
                  "admin_adhoc", "admin_shell", "posix")


def _lua_block(text: str, key: str) -> tuple[int, int]:
    start = text.index(f"{key} = {{")
    return start, text.index("}", start) + 1


def _set_modules(main: str, modules: Iterable[str]) -> str:
    start, end = _lua_block(main, "modules_enabled")
    listed = "".join(f'\n\t"{m}";' for m in modules)
    return main[:start] + f"modules_enabled = {{{listed}\n}}" + main[end:]


def _without_module(main: str, module: str) -> str:
    return main.replace(f'\t"{module}";\n', "", 1)


def _naive_main(main: str) -> str:
    start, end = _lua_block(main, "modules_enabled")
    ours = [m for m in main[start:end].split('"')[1::2] if m not in DEBIAN_MODULES and m != SHARED_MODULE]
    main = _set_modules(main, [*DEBIAN_MODULES, *ours])
    start, end = _lua_block(main, "modules_disabled")
    main = main[:start] + "modules_disabled = { }" + main[end:]
    return _without_gc(main)


def _naive_tenant(tenant: str) -> str:
    vhost, component = tenant.split("Component ")
    head = component.split("\n", 1)[0]
    kept = [line for line in component.split("\n")[1:]
            if line.strip().startswith(("enabled", "ssl", "muc_", "restrict"))]
    return vhost + "Component " + head + '\n\tmodules_enabled = { "muc_mam" }\n' + "\n".join(kept) + "\n"


def _without_gc(main: str) -> str:
    return "\n".join(line for line in main.split("\n") if not line.startswith("gc = "))


_INCREMENTAL = 'gc = {{ mode = "incremental"; threshold = {}; speed = {}; }}'


def _gc(main: str, setting: str) -> str:
    return "\n".join(setting if line.startswith("gc = ") else line for line in main.split("\n"))


def _same(text: str) -> str:
    return text


# name -> (edit of the main file, edit of a commune's file)
VARIANTS: dict[str, tuple[Edit, Edit]] = {
    "production": (_same, _same),
    "naive": (_naive_main, _naive_tenant),
    "no-sharing": (lambda main: _without_module(main, SHARED_MODULE), _same),
    "no-muc": (_same, lambda tenant: tenant.split("Component ")[0]),
    "generational-gc": (lambda main: _gc(main, 'gc = { mode = "generational"; }'), _same),
    "no-gc-tuning": (_without_gc, _same),
    "gc-105-500": (lambda main: _gc(main, _INCREMENTAL.format(105, 500)), _same),  # Prosody's default
    "gc-100-500": (lambda main: _gc(main, _INCREMENTAL.format(100, 500)), _same),
    "one-certificate": (_same, _same),  # the certificates are chosen in _files_for
}


def _domain(i: int) -> str:
    return f"bench-{i:04d}.density.invalid"


def _certificates(domains: list[str], shared: bool) -> dict[str, tuple[bytes, bytes]]:
    """A throwaway CA and one certificate per commune (domain and its conference component), or
    with `shared` one certificate naming every commune (a wildcard would do the same)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Relais density bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def issue(names: list[str]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return chain, pem

    if shared:
        pair = issue(["*.density.invalid"])
        return {domain: pair for domain in domains}
    return {domain: issue([domain, f"conference.{domain}"]) for domain in domains}


def _tenant_text(template: Any, variant: str, domain: str, index: int, directory: str) -> str:
    tenant = template.model_copy(update={"id": f"b{index:04d}", "insee": f"b{index:04d}", "commune": domain,
                                         "domain": domain, "server_name": domain, "status": "active"})
    text = render_tenant(tenant).replace("/etc/relais/tls/", f"{directory}/tls/")
    if variant == "one-certificate":
        text = text.replace(f"{directory}/tls/{domain}/", f"{directory}/tls/shared/")
    return VARIANTS[variant][1](text)


def _main_text(variant: str, directory: str, monitor: list[str]) -> str:
    settings = HostSettings(private_address=None, metrics_port=PORT_BASE + 280, metrics_sources=monitor,
                            allowed=[])
    main = render_main(settings).replace(LOCAL_MODULES_DIR, f"{directory}/modules")
    # Prosody 0.12.3 fails on an option set twice (its warning crashes): replace, do not append.
    data = f"{directory}/data"
    replaced = {"pidfile": f'"{data}/prosody.pid"', "admin_socket": f'"{data}/prosody.sock"',
                "log": f'{{ info = "{data}/prosody.log"; error = "{data}/prosody.err"; }}'}
    lines, skipping = [], False
    for line in main.split("\n"):
        key = line.split(" = ", 1)[0]
        if skipping:
            skipping = line != "}"
            continue
        if key in replaced:
            lines.append(f"{key} = {replaced[key]}")
            skipping = line.endswith("{")
            continue
        lines.append(line)
    main = "\n".join(lines)
    overrides = "\n".join([
        "-- density bench: its own ports, data and certificates, beside the deployed Prosody",
        f"c2s_ports = {{ {PORT_BASE + 222} }}",
        f"s2s_ports = {{ {PORT_BASE + 269} }}",
        "c2s_direct_tls_ports = { }",
        f'data_path = "{directory}/data"',
        f'certificates = "{directory}/tls"',
        "",
    ])
    marker = "-- Federation allow-list and communes"
    main = main.replace(marker, overrides + marker)
    main = (main.replace(FEDERATION_CONFIG, f"{directory}/federation.cfg.lua")
            .replace(TENANTS_DIR, f"{directory}/relais.d"))
    return VARIANTS[variant][0](main)


def _tarball(files: dict[str, bytes]) -> str:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(out.getvalue()).decode()


def _files_for(template: Any, variant: str, indices: Iterable[int], directory: str) -> dict[str, bytes]:
    indices = list(indices)
    domains = [_domain(i) for i in indices]
    shared = variant == "one-certificate"
    files: dict[str, bytes] = {}
    for i, (domain, (chain, key)) in zip(indices, _certificates(domains, shared).items(), strict=True):
        files[f"relais.d/b{i:04d}.cfg.lua"] = _tenant_text(template, variant, domain, i, directory).encode()
        folder = "shared" if shared else domain
        files[f"tls/{folder}/fullchain.pem"] = chain
        files[f"tls/{folder}/privkey.pem"] = key
    return files


def _push(run: Runner, directory: str, files: dict[str, bytes]) -> None:
    rc, out = run(f"base64 -d | tar -xzf - -C {directory} && chown -R root:prosody {directory} && "
                  f"chmod -R g+rX {directory} && chown -R prosody:prosody {directory}/data", _tarball(files))
    if rc != 0:
        raise RuntimeError(f"pushing bench files failed: {out}")


def _proc(run: Runner, pid: int) -> tuple[int, int]:
    """(PSS in KiB, CPU ticks) of a process."""
    rc, out = run(f"grep '^Pss:' /proc/{pid}/smaps_rollup; awk '{{print $14+$15}}' /proc/{pid}/stat", None)
    if rc != 0:
        raise RuntimeError(f"cannot read /proc/{pid}: {out}")
    lines = out.split("\n")
    return int(lines[0].split()[1]), int(lines[1])


def _wait_idle(run: Runner, pid: int, timeout: float = 1800) -> None:
    """The c2s port listening (start-up done) and no CPU used for two seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        _, out = run(f"ss -Hltn 'sport = :{PORT_BASE + 222}' | wc -l", None)
        listening = out.strip().split("\n")[-1].strip() != "0"
        _, ticks = _proc(run, pid)
        if listening and ticks == last:
            return
        last = ticks
        time.sleep(2)
    raise RuntimeError("the bench Prosody did not settle")


def _shell(run: Runner, directory: str, lines: str) -> str:
    """Admin-shell lines for the bench Prosody (as the deploy's prosody-shell does for the real one)."""
    rc, out = run(f"prosodyctl --config {directory}/prosody.cfg.lua shell --quiet", lines)
    if rc != 0 or "! " in out or "Unable to connect" in out:
        raise RuntimeError(f"admin shell of the bench Prosody failed: {out[-500:]}")
    return out


# mod_relais_shared makes a second full collection 5 s after a reload (once new hosts are active).
RELOAD_SETTLE_S = 6


def _reload(run: Runner, directory: str, pid: int) -> int:
    """One reload as the deploy makes it; PSS (KiB) once the CPU is idle again."""
    from deploys.xmpp import sync_input  # the deploy's own admin-shell lines

    _shell(run, directory, sync_input([]))
    time.sleep(RELOAD_SETTLE_S)
    _wait_idle(run, pid)
    return _proc(run, pid)[0]


def _add_by_reload(run: Runner, template: Any, variant: str, directory: str, pid: int, first: int,
                   count: int) -> dict[str, Any]:
    """Add `count` communes the way the deploy does: their files, then config:reload() and the
    activation of the new hosts through the admin shell; the process must stay the same."""
    before, ticks_before = _proc(run, pid)
    # Like the deploy's files.put; the bench's `chown -R` also changes the times of every other
    # commune's certificate, which must not make their TLS contexts again (mod_relais_shared).
    _push(run, directory, _files_for(template, variant, range(first, first + count), directory))
    started = time.monotonic()
    after = _reload(run, directory, pid)
    elapsed = time.monotonic() - started - RELOAD_SETTLE_S
    _, ticks_after = _proc(run, pid)
    again = _reload(run, directory, pid)  # and one more with nothing new: no growth expected
    _, alive = run(f"kill -0 {pid} && echo same-process", None)
    _, hz = run("getconf CLK_TCK", None)
    return {"added": count, "same_process": "same-process" in alive,
            "pss_before_mib": round(before / 1024, 1), "pss_after_mib": round(after / 1024, 1),
            "pss_kib_per_added_commune": round((after - before) / count, 1),
            "pss_after_second_reload_mib": round(again / 1024, 1),
            "reload_cpu_s": round((ticks_after - ticks_before) / int(hz.strip() or 100), 2),
            "reload_wall_s": round(elapsed, 1)}


def measure_one(run: Runner, template: Any, variant: str, count: int, monitor: list[str],
                add: int = 0, reloads: int = 2) -> dict[str, Any]:
    directory = f"{BENCH_DIR}/{variant}-n{count}"
    run(f"rm -rf {directory} && mkdir -p {directory}/relais.d {directory}/data {directory}/tls "
        f"{directory}/modules", None)
    files = _files_for(template, variant, range(1, count + 1), directory)
    files["prosody.cfg.lua"] = _main_text(variant, directory, monitor).encode()
    files["federation.cfg.lua"] = render_federation(HostSettings(None, 0, [], [])).encode()
    for name in LOCAL_MODULES:
        files[f"modules/mod_{name}.lua"] = (MODULES_SRC / f"mod_{name}.lua").read_bytes()
    _push(run, directory, files)
    # The limit the deploy gives the service (render_unit_dropin): reloads open every commune's
    # file. Set inside runuser, whose PAM session would bring the soft limit back to 1024.
    start = f"ulimit -n {OPEN_FILES_LIMIT} && exec prosody -F --config {directory}/prosody.cfg.lua"
    _, out = run(f"cd {directory} && (setsid runuser -u prosody -- sh -c '{start}' < /dev/null "
                 f"> {directory}/stdout 2>&1 & echo $!)", None)
    launcher = int(out.strip().split()[-1])
    time.sleep(1)
    _, found = run(f"pgrep -P {launcher} -f 'prosody -F' || echo {launcher}", None)
    pid = int(found.split()[0])
    try:
        started = time.monotonic()
        _wait_idle(run, pid)
        elapsed = time.monotonic() - started
        pss, ticks = _proc(run, pid)
        _, hz = run("getconf CLK_TCK", None)
        _, errors = run(f"grep -c 'error' {directory}/data/prosody.err 2>/dev/null || true", None)
        result: dict[str, Any] = {
            "config": variant, "communes": count,
            "errors_in_log": int(errors.strip().split("\n")[-1] or 0),
            "pss_mib": round(pss / 1024, 1),
            "startup_cpu_s": round(ticks / int(hz.strip() or 100), 2), "settle_wall_s": round(elapsed, 1)}
        if reloads:
            after = [_reload(run, directory, pid) for _ in range(reloads)]
            result["pss_after_reloads_mib"] = [round(p / 1024, 1) for p in after]
            # The steady state: the high-water mark the allocator keeps after the reloads.
            result["pss_after_reload_mib"] = round(max(after) / 1024, 1)
        if add:
            result["reload_add"] = _add_by_reload(run, template, variant, directory, pid, count + 1, add)
        return result
    except RuntimeError as error:
        _, logs = run(f"cd {directory} && tail -n 20 stdout data/prosody.err data/prosody.log", None)
        raise RuntimeError(f"{error}\n{logs}") from None
    finally:
        run(f"kill {pid} {launcher} 2>/dev/null; sleep 1; kill -9 {pid} {launcher} 2>/dev/null; "
            f"rm -rf {directory}", None)


def marginal(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PSS per additional commune between consecutive counts: after start-up and, when measured,
    after reloads (`per_commune`: the figure that counts, after reload when there is one)."""
    out = []
    for a, b in itertools.pairwise(sorted(results, key=lambda r: r["communes"])):
        added = b["communes"] - a["communes"]
        step: dict[str, Any] = {
            "from": a["communes"], "to": b["communes"],
            "pss_kib_per_commune": round((b["pss_mib"] - a["pss_mib"]) * 1024 / added, 1),
            "startup_cpu_ms_per_commune": round((b["startup_cpu_s"] - a["startup_cpu_s"]) * 1000 / added, 1)}
        if "pss_after_reload_mib" in a and "pss_after_reload_mib" in b:
            step["pss_after_reload_kib_per_commune"] = round(
                (b["pss_after_reload_mib"] - a["pss_after_reload_mib"]) * 1024 / added, 1)
        step["per_commune"] = step.get("pss_after_reload_kib_per_commune", step["pss_kib_per_commune"])
        out.append(step)
    return out


def measure_configs(run: Runner, template: Any, counts: Iterable[int], configs: list[str],
                    baseline_counts: Iterable[int], monitor: list[str], add: int = 0,
                    reloads: int = 2) -> dict[str, Any]:
    """Each configuration at each count (the first configuration at `counts`, the others at
    `baseline_counts`); `run` executes a shell command on the lab host."""
    counts, baseline_counts = sorted(counts), sorted(baseline_counts)
    report: dict[str, Any] = {"flavor": "xmpp", "reported": configs[0], "configs": {}}
    for index, variant in enumerate(configs):
        sizes = counts if index == 0 else baseline_counts
        results = []
        for n in sizes:
            adding = add if index == 0 and n == sizes[-1] else 0
            one = measure_one(run, template, variant, n, monitor, adding, reloads)
            print(json.dumps(one), file=sys.stderr)
            results.append(one)
        steps = marginal(results)
        last = steps[-1]["per_commune"] if steps else 0
        startup = steps[-1]["pss_kib_per_commune"] if steps else 0
        report["configs"][variant] = {
            "results": results, "marginal": steps,
            "communes_per_gib": round(1024 * 1024 / last) if last > 0 else None,
            "communes_per_gib_at_startup": round(1024 * 1024 / startup) if startup > 0 else None}
    reported = report["configs"][configs[0]]
    if "naive" in report["configs"] and configs[0] != "naive":
        naive = report["configs"]["naive"]["marginal"]
        naive_steps = {(n["from"], n["to"]) for n in naive}
        same = [m for m in reported["marginal"] if (m["from"], m["to"]) in naive_steps]
        if naive and same:
            n = next(x for x in naive if (x["from"], x["to"]) == (same[-1]["from"], same[-1]["to"]))
            report["ratio_to_naive"] = {"from": n["from"], "to": n["to"],
                                        "naive_kib_per_commune": n["per_commune"],
                                        "reported_kib_per_commune": same[-1]["per_commune"],
                                        "ratio": round(same[-1]["per_commune"] / n["per_commune"], 2)}
    return report


def _lab_runner(host: str) -> Runner:
    from relais.cli.context import State, default_inventory, load_plan
    from relais.lab.lab import Lab

    lab = Lab(load_plan(State(inventory=default_inventory())))

    def run(command: str, stdin: str | None) -> tuple[int, str]:
        done = lab.exec(host, ["sh", "-c", command], timeout=1800, input_text=stdin)
        return done.returncode, (done.stdout + done.stderr).strip()

    return run


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--xmpp-host", default=None, help="lab host to run on (default: the last xmpp host)")
    parser.add_argument("--xmpp-counts", type=_ints, default=[10, 100, 1000],
                        help="communes per Prosody for the reported configuration (comma-separated)")
    parser.add_argument("--xmpp-configs", default="production,naive",
                        help=f"configurations to measure, the first is reported: {', '.join(VARIANTS)}")
    parser.add_argument("--xmpp-baseline-counts", type=_ints, default=[10, 100],
                        help="communes per Prosody for the other configurations")
    parser.add_argument("--xmpp-add", type=int, default=10,
                        help="communes added by reload to the largest reported Prosody (0: skip)")
    parser.add_argument("--xmpp-reloads", type=int, default=2,
                        help="reloads before the after-reload PSS, at every count (0: start-up only)")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from relais.cli.context import State, default_inventory, load_plan

    configs = [c.strip() for c in args.xmpp_configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in VARIANTS]
    if unknown:
        return {"error": f"unknown xmpp configuration(s) {unknown}; known: {list(VARIANTS)}"}
    plan = load_plan(State(inventory=default_inventory()))
    services = [s.host for s in plan.xmpp_services]
    host = args.xmpp_host or (services[-1] if services else "")
    templates = [t for t in plan.tenants if t.flavor == "xmpp"]
    if not host or not templates:
        return {"error": "the Plan has no xmpp service: deploy a lab with xmpp communes first"}
    monitor = [h.address for h in plan.hosts if "monitor" in h.roles and h.address]
    report = measure_configs(_lab_runner(host), templates[0], args.xmpp_counts, configs,
                             args.xmpp_baseline_counts, monitor, args.xmpp_add, args.xmpp_reloads)
    report["host"] = host
    return report


def render(result: dict[str, Any]) -> str:
    lines = [f"host {result.get('host')}; reported configuration: {result['reported']}",
             "KiB/commune: marginal from the previous count, after start-up | after reloads",
             "config           communes  PSS start-up  after reload  start-up CPU  KiB/commune start | reload"
             "  CPU ms/commune"]
    for name, config in result["configs"].items():
        steps = {m["to"]: m for m in config["marginal"]}
        for r in config["results"]:
            step = steps.get(r["communes"])
            reloaded = f"{r['pss_after_reload_mib']:>8.1f} MiB" if "pss_after_reload_mib" in r else " " * 12
            per = ""
            if step:
                after = step.get("pss_after_reload_kib_per_commune")
                per = (f"{step['pss_kib_per_commune']:>8.1f} | "
                       + (f"{after:>7.1f}" if after is not None else "      -") + f" (from {step['from']})")
            cpu = f"{step['startup_cpu_ms_per_commune']:>8.1f}" if step else ""
            lines.append(f"{name:<16} {r['communes']:>8} {r['pss_mib']:>8.1f} MiB  {reloaded} "
                         f"{r['startup_cpu_s']:>8.2f} s   {per:<32}  {cpu}")
        if config["communes_per_gib"]:
            lines.append(f"{'':<16} -> {config['communes_per_gib']} communes per GiB at the last step "
                         "(after reload when measured; at start-up: "
                         f"{config['communes_per_gib_at_startup']})")
        for r in config["results"]:
            if "reload_add" in r:
                a = r["reload_add"]
                lines.append(f"{'':<16} +{a['added']} by reload: PSS {a['pss_before_mib']} -> "
                             f"{a['pss_after_mib']} MiB ({a['pss_kib_per_added_commune']} KiB per added "
                             f"commune, {a['reload_cpu_s']} s CPU), "
                             f"{a['pss_after_second_reload_mib']} MiB after another reload; "
                             f"same process: {a['same_process']}")
    if "ratio_to_naive" in result:
        r = result["ratio_to_naive"]
        lines.append(f"ratio to naive ({r['from']}->{r['to']} communes): {r['reported_kib_per_commune']} / "
                     f"{r['naive_kib_per_commune']} KiB = {r['ratio']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args)
    if "error" in result or args.json:
        print(json.dumps(result, indent=2))
        return 1 if "error" in result else 0
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
