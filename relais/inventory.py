"""Load `inventory/` into a checked :class:`Inventory`, reporting every problem with its place.

Checks that need more than one file (the official referential, uniqueness of
domains, hosts named by communes) live here; shape checks live in
:mod:`relais.model`. The loader never stops at the first problem: it gathers
them all so one run of `relais validate` shows everything to fix.
"""

from __future__ import annotations

import gc
import os
import pickle
import re
import signal
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from relais.errors import Problem, ProblemCollector
from relais.model import (
    CommuneFile,
    Flavor,
    Hosting,
    Role,
)
from relais.referential import KIND_LABELS, Referential, normalize, slugify
from relais.yamlsafe import LazyLines, LineMap, Lines, YamlFileError, line_of, read_yaml, read_yaml_data

HOSTING_FILE = "hosting.yaml"
COMMUNES_DIR = "communes"
COMMUNE_FILE_RE = re.compile(r"^(?P<insee>\d{5}|2[AB]\d{3})-(?P<slug>[a-z0-9-]+)\.ya?ml$")


@dataclass(frozen=True)
class CommuneDecl:
    """One commune file, checked against the referential."""

    file: str
    lines: Lines
    data: CommuneFile
    departement: str
    region: str
    population: int | None
    official_name: str
    slug: str

    @cached_property
    def insee(self) -> str:
        # Asked a dozen times per commune by the checks and the planner: read once.
        return self.data.commune.insee

    @cached_property
    def logins(self) -> tuple[str, ...]:
        """Each agent's login (declared, or derived from the name; "" when none can be)."""
        return tuple(agent_login(a.name, a.login) for a in self.data.tenant.agents)

    def line(self, *loc: str | int) -> int | None:
        return line_of(self.lines, loc)


@dataclass(frozen=True)
class Inventory:
    root: Path
    hosting: Hosting
    hosting_lines: Lines
    communes: list[CommuneDecl]
    referential_version: str
    warnings: list[Problem] = field(default_factory=list)
    provisioned: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """Addresses of provisioned hosts (private, public) read from `provisioned/<stack>.yaml`."""


# --------------------------------------------------------------------------- pydantic errors


def _all_field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for sub in _models_in(info.annotation):
            names |= _all_field_names(sub, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


_KNOWN_KEYS = {CommuneFile: _all_field_names(CommuneFile), Hosting: _all_field_names(Hosting)}


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _pydantic_problems(
    exc: ValidationError, file: str, lines: Lines, model: type[BaseModel], data: Any
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if p != "[key]")
        problems.append(_one_problem(error, loc, file, lines, model, data))
    return problems


def _value_at(data: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _one_problem(
    error: ErrorDetails,
    loc: tuple[str | int, ...],
    file: str,
    lines: Lines,
    model: type[BaseModel],
    data: Any,
) -> Problem:
    kind = error["type"]
    line = line_of(lines, loc)
    field_ = _dotted(loc)
    given = error.get("input")
    message = error["msg"]
    expected: str | None = None
    hint: str | None = None
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        message = f"unknown key {key!r}"
        close = get_close_matches(key, sorted(_KNOWN_KEYS[model]), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "remove it; see docs/inventory.md for the keys"
    elif kind == "missing":
        message = "is required but missing"
        line = line_of(lines, loc[:-1])
        hint = "see docs/inventory.md for an example"
    elif kind in ("literal_error", "enum"):
        ctx = error.get("ctx") or {}
        expected = str(ctx.get("expected", ""))
        message = f"invalid value {given!r}"
        choices = re.findall(r"'([^']+)'", expected)
        close = get_close_matches(str(given), choices, n=1, cutoff=0.5) if choices else []
        if close:
            hint = f"did you mean {close[0]!r}?"
    elif kind == "value_error":
        text = message.removeprefix("Value error, ")
        if isinstance(given, dict):
            message = text
        else:
            expected = text
            message = f"invalid value {given!r}"
    elif (kind in ("string_type", "str_type") and isinstance(given, int | float)
          and not isinstance(given, bool)):
        message = f"is a number ({given!r}) where text is expected"
        hint = f'quote it: "{given}" (leading zeros of codes are lost otherwise)'
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping (key: value lines), got {_kind_of(given)}"
    elif kind in ("list_type",):
        message = f"expected a list (lines starting with '- '), got {_kind_of(given)}"
    elif kind == "too_short":
        message = f"is empty: {message}"
    else:
        shown = given is not None and not isinstance(given, dict | list)
        message = f"{message}" + (f" (got {given!r})" if shown else "")
    return Problem(file, line, field_, message, expected, hint)


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"text {value!r}"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


# --------------------------------------------------------------------------- loading


def _parse_file(
    path: Path, display: str, model: type[BaseModel], problems: ProblemCollector
) -> tuple[Any, Lines] | None:
    return _validate(_read(path, display), display, model, problems)


def _read(path: Path | str, display: str) -> tuple[Any, LineMap] | Problem:
    """Read and parse one file: its data and line map, or the problem that stops it."""
    try:
        return read_yaml(path, display)
    except YamlFileError as exc:
        return exc.problem


def _read_data(path: str, display: str) -> Any:
    """Read and parse one commune file: its data (lines come later, if ever), or its Problem."""
    try:
        return read_yaml_data(path, display)
    except YamlFileError as exc:
        return exc.problem


def _with_lines(data: Any, path: str, display: str) -> tuple[Any, Lines] | Problem:
    if isinstance(data, Problem):
        return data
    return data, LazyLines(path, display)


def _validate(
    parsed: tuple[Any, Lines] | Problem, display: str, model: type[BaseModel],
    problems: ProblemCollector,
) -> tuple[Any, Lines] | None:
    if isinstance(parsed, Problem):
        problems.problems.append(parsed)
        return None
    data, lines = parsed
    if data is None:
        problems.add(display, None, "", "file is empty", hint="see docs/inventory.md for an example")
        return None
    if not isinstance(data, dict):
        problems.add(display, line_of(lines, ()), "",
                     f"expected a mapping at the top of the file, got {_kind_of(data)}",
                     hint="the file starts with `version: 1` and top-level keys")
        return None
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        problems.problems.extend(_pydantic_problems(exc, display, lines, model, data))
        return None


def load_hosting(root: Path, problems: ProblemCollector) -> tuple[Hosting, Lines] | None:
    path = root / HOSTING_FILE
    display = _display(root, path)
    if not path.is_file():
        problems.add(display, None, "", "hosting file not found",
                     hint=f"an inventory directory holds {HOSTING_FILE} and {COMMUNES_DIR}/; "
                     "pass another with --inventory")
        return None
    result = _parse_file(path, display, Hosting, problems)
    if result is None:
        return None
    hosting, lines = result
    assert isinstance(hosting, Hosting)
    _check_hosting(hosting, lines, display, problems)
    return hosting, lines


def _check_hosting(hosting: Hosting, lines: Lines, file: str, problems: ProblemCollector) -> None:
    seen_addresses: dict[str, str] = {}
    subnet = hosting.lab.subnet
    gateway = next(subnet.hosts())
    for name, host in hosting.hosts.items():
        if host.site not in hosting.sites:
            problems.add(file, line_of(lines, ("hosts", name, "site")), f"hosts.{name}.site",
                         f"unknown site {host.site!r}", expected="one of " + ", ".join(sorted(hosting.sites)),
                         hint=_suggest(host.site, hosting.sites))
        if host.address is not None:
            text = str(host.address)
            if text in seen_addresses:
                problems.add(file, line_of(lines, ("hosts", name, "address")), f"hosts.{name}.address",
                             f"address {text} is already used by host {seen_addresses[text]!r}")
            seen_addresses[text] = name
            if host.provider == "lab" and (host.address not in subnet or host.address == gateway):
                problems.add(file, line_of(lines, ("hosts", name, "address")), f"hosts.{name}.address",
                             f"lab address {text} is outside the lab subnet {subnet} or is its gateway",
                             expected=f"an address of {subnet} other than {gateway}")
    shared = hosting.shared_homeserver
    if shared is not None:
        shared_host = hosting.hosts.get(shared.host)
        where = line_of(lines, ("shared_homeserver", "host"))
        if shared_host is None:
            problems.add(file, where, "shared_homeserver.host", f"unknown host {shared.host!r}",
                         hint=_suggest(shared.host, hosting.hosts))
        elif Role.MESSAGING not in shared_host.roles:
            problems.add(file, where, "shared_homeserver.host",
                         f"host {shared.host!r} does not have the messaging role",
                         hint=f"add messaging to hosts.{shared.host}.roles or choose another host")


def _suggest(word: str, choices: Any) -> str | None:
    close = get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root.parent)) if root.parent != Path() else str(path)
    except ValueError:
        return str(path)


def commune_files(root: Path) -> list[Path]:
    folder = root / COMMUNES_DIR
    return [folder / name for name in _commune_names(folder)]


def _commune_names(folder: Path) -> list[str]:
    """Declaration files in `folder`, in path order (names compared as strings)."""
    if not folder.is_dir():
        return []
    return sorted(
        name for name in os.listdir(folder)
        if name.endswith((".yaml", ".yml")) and not name.startswith(".")
    )


def load_commune(
    path: Path, display: str, referential: Referential, problems: ProblemCollector,
    warnings: list[Problem],
) -> CommuneDecl | None:
    parsed = _with_lines(_read_data(str(path), display), str(path), display)
    return _check_commune(path.name, display, parsed, referential, problems, warnings)


def _check_commune(
    name: str, display: str, parsed: tuple[Any, Lines] | Problem, referential: Referential,
    problems: ProblemCollector, warnings: list[Problem],
) -> CommuneDecl | None:
    match = COMMUNE_FILE_RE.match(name)
    result = _validate(parsed, display, CommuneFile, problems)
    if result is None:
        return None
    decl, lines = result
    assert isinstance(decl, CommuneFile)
    commune = decl.commune
    if match is None:
        problems.add(display, None, "", "file name does not follow <insee>-<slug>.yaml",
                     hint=f"rename it {commune.insee}-{slugify(commune.name)}.yaml")
    elif match.group("insee") != commune.insee:
        problems.add(display, line_of(lines, ("commune", "insee")), "commune.insee",
                     f"INSEE code {commune.insee} does not match the file name",
                     hint=f"rename the file {commune.insee}-{match.group('slug')}.yaml or fix the code")
    official = referential.current(commune.insee)
    if official is None:
        others = referential.non_current(commune.insee)
        where = line_of(lines, ("commune", "insee"))
        if others:
            other = others[0]
            parent = referential.current(other.parent or "")
            belongs = f"{parent.name} ({parent.insee})" if parent else (other.parent or "?")
            problems.add(display, where, "commune.insee",
                         f"{commune.insee} ({other.name}) is {KIND_LABELS.get(other.kind, other.kind)}, "
                         "not a current commune",
                         expected="the INSEE code of a current commune (commune actuelle)",
                         hint=f"it belongs to {belongs}; declare the tenant for that commune")
        else:
            found = referential.search(commune.name, limit=3)
            hint = ("`relais communes search NAME` finds codes"
                    + (": " + ", ".join(f"{c.name} = {c.insee}" for c in found) if found else ""))
            problems.add(display, where, "commune.insee",
                         f"no current commune has INSEE code {commune.insee} in the official list "
                         f"(version {referential.version})", hint=hint)
        return None
    if commune.name != official.name:
        if normalize(commune.name) == normalize(official.name):
            warnings.append(Problem(display, line_of(lines, ("commune", "name")), "commune.name",
                                    f"{commune.name!r} accepted as {official.name!r}",
                                    hint=f"write the official spelling: name: {official.name}"))
        else:
            close = referential.closest_name(commune.name, official.departement)
            problems.add(display, line_of(lines, ("commune", "name")), "commune.name",
                         f"{commune.name!r} is not the name of commune {commune.insee}",
                         expected=f"the official name {official.name!r}",
                         hint="fix the name or the INSEE code"
                         + (f" (close names in département {official.departement}: {', '.join(close)})"
                            if close else ""))
    if official.siren and commune.siren is None:
        problems.add(display, line_of(lines, ("commune",)), "commune.siren", "is required but missing",
                     expected=f'siren: "{official.siren}" (from the official list)')
    elif official.siren and commune.siren != official.siren:
        problems.add(display, line_of(lines, ("commune", "siren")), "commune.siren",
                     f"SIREN {commune.siren} is not the SIREN of {official.name}",
                     expected=f"{official.siren} (from the official list)")
    return CommuneDecl(display, lines, decl, official.departement, official.region,
                       official.population, official.name, slugify(official.name))


def _check_cross_file(
    hosting: Hosting | None, communes: list[CommuneDecl], problems: ProblemCollector
) -> None:
    by_insee: dict[str, CommuneDecl] = {}
    domains: dict[str, CommuneDecl] = {}
    reserved: set[str] = set()
    if hosting is not None:
        reserved.add(hosting.syndicate.domain)
        if hosting.shared_homeserver and hosting.shared_homeserver.server_name:
            reserved.add(hosting.shared_homeserver.server_name)
    for decl in communes:
        tenant = decl.data.tenant
        if decl.insee in by_insee:
            problems.add(decl.file, decl.line("commune", "insee"), "commune.insee",
                         f"commune {decl.insee} is already declared in {by_insee[decl.insee].file}",
                         hint="one file per commune; merge the two")
        by_insee[decl.insee] = decl
        if tenant.domain is not None:
            if tenant.domain in reserved:
                problems.add(decl.file, decl.line("tenant", "domain"), "tenant.domain",
                             f"{tenant.domain} is the syndicate's own domain",
                             hint="choose the commune's domain or a subdomain of the syndicate's")
            elif tenant.domain in domains:
                problems.add(decl.file, decl.line("tenant", "domain"), "tenant.domain",
                             f"domain {tenant.domain} is already used by {domains[tenant.domain].file}")
            domains[tenant.domain] = decl
        logins: dict[str, int] = {}
        for index, login in enumerate(decl.logins):
            if not login:
                problems.add(decl.file, decl.line("tenant", "agents", index, "name"),
                             f"tenant.agents[{index}].name", "no login can be derived from this name",
                             hint="add `login:` to the agent")
            elif login in logins:
                problems.add(decl.file, decl.line("tenant", "agents", index), f"tenant.agents[{index}]",
                             f"login {login!r} is also the login of agent {logins[login]}",
                             hint="set a distinct `login:` for one of them")
            logins[login] = index
        if (hosting is not None and tenant.flavor is Flavor.MATRIX_SHARED
                and hosting.shared_homeserver is None):
            problems.add(decl.file, decl.line("tenant", "flavor"), "tenant.flavor",
                         "matrix-shared needs the syndicate's shared homeserver, "
                         "and hosting.yaml declares none",
                         hint="add `shared_homeserver: {host: <messaging host>}` to hosting.yaml")


_NOT_LOGIN = re.compile(r"[^a-z0-9.]")


def agent_login(name: str, login: str | None) -> str:
    if login:
        return login
    return _NOT_LOGIN.sub("", slugify(name).replace("-", "."))[:64].strip(".")


def load_inventory(root: Path, referential: Referential | Callable[[], Referential]) -> Inventory:
    """Read and check every declaration; raise InventoryError listing all problems.

    `referential` may be given as the function that loads it: it is then loaded while the
    first commune files are being read (by forked helpers, for a large inventory).
    """
    with gc_paused():
        return _load_inventory(root, referential)


# Above this many new objects, `gc_paused` hands them to the permanent generation.
GC_FREEZE_AFTER = 100_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Loading builds many long-lived objects and no cycles; the cycle collector
    would rescan them again and again (quadratic at the scale of France).

    After a large load (an inventory of thousands of communes, its Plan), the
    survivors are moved to the permanent generation (`gc.freeze`): otherwise the
    first collection after the pause walks all of them at once (about a second
    for the whole of France), and every full collection after that again. They
    are still freed by reference counting when dropped; only reference cycles
    among them would wait for `gc.unfreeze()`, and loading makes none.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_count()[0] > GC_FREEZE_AFTER:
                gc.freeze()
            gc.enable()


# Reading and parsing YAML is most of the work of loading. From this many commune
# files on, forked helper processes parse most of them (see `_read_forked`).
PARALLEL_MIN_FILES = 2000
_CHUNK = 64
_PIPE_SIZE = 1 << 20
_OWN_PERIOD = 4
"""With one helper, this process parses one chunk in this many (it also validates them all);
one in 2, 3, 5, 6 or 8 was measured slower for all of France (docs/performance.md)."""

Parsed = Any
"""A commune file's data, or the Problem that stops it (lines: `LazyLines`)."""


def workers() -> int:
    """Processes to parse with: RELAIS_WORKERS, else the cores this process may use."""
    wanted = os.environ.get("RELAIS_WORKERS", "").strip()
    if wanted.isdigit():
        return int(wanted)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _read_chunk(folder: str, prefix: str, names: list[str]) -> list[Parsed]:
    return [_read_data(f"{folder}/{name}", f"{prefix}/{name}") for name in names]


def _read_all(folder: str, names: list[str], prefix: str) -> Generator[Parsed, None, None]:
    """Read and parse the commune files, in order: data and line map, or the problem."""
    chunks = [names[i:i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    helpers = min(workers(), 8) - 1
    if helpers < 1 or len(names) < PARALLEL_MIN_FILES or not hasattr(os, "fork"):
        for chunk in chunks:
            yield from _read_chunk(folder, prefix, chunk)
        return
    yield from _read_forked(folder, prefix, chunks, helpers)


def _read_forked(folder: str, prefix: str, chunks: list[list[str]], helpers: int) -> Iterator[Parsed]:
    """`_read_all` with forked helpers parsing chunks of files.

    Each helper parses its chunks in order and sends each chunk's results
    (plain data, line maps, YAML problems: pickled) through its own pipe; this
    process reads them back in file order, so the results are those of the
    sequential path, in the same order. Since this process also validates
    every file, with a single helper it parses one chunk in four itself (which
    balances the two cores), with more it parses none. A helper that cannot
    start or dies leaves its chunks to this process.
    """
    period = _OWN_PERIOD if helpers == 1 else 0
    lanes: list[int] = []  # who parses chunk i: -1 this process, else a helper's index
    helper = 0
    for index in range(len(chunks)):
        if period and index % period == 0:
            lanes.append(-1)
        else:
            lanes.append(helper)
            helper = (helper + 1) % helpers
    streams: list[BinaryIO | None] = []
    pids: list[int] = []
    done = False
    try:
        for helper in range(helpers):
            mine = [chunks[i] for i, lane in enumerate(lanes) if lane == helper]
            try:
                read_fd, write_fd = os.pipe()
            except OSError:  # out of file descriptors: parse those chunks here
                streams.append(None)
                continue
            try:
                _grow_pipe(write_fd)
                pid = os.fork()
            except OSError:  # cannot fork (process limits): parse those chunks here
                os.close(read_fd)
                os.close(write_fd)
                streams.append(None)
                continue
            if pid == 0:  # the helper: parse, send, and never return to the caller
                os.close(read_fd)
                _helper(folder, prefix, mine, write_fd)
            os.close(write_fd)
            pids.append(pid)
            streams.append(os.fdopen(read_fd, "rb"))
        for chunk, lane in zip(chunks, lanes, strict=True):
            results = None
            stream = streams[lane] if lane >= 0 else None
            if stream is not None:
                results = _receive(stream)
                if results is None:  # the helper died: its remaining chunks are ours
                    stream.close()
                    streams[lane] = None
            if results is None:
                results = _read_chunk(folder, prefix, chunk)
            yield from results
        done = True
    finally:
        for stream in streams:
            if stream is not None:
                stream.close()
        for pid in pids:
            if not done:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _grow_pipe(fd: int) -> None:
    """Let a helper run a few chunks ahead (Linux pipes hold 64 kB by default)."""
    with suppress(ImportError, AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _helper(folder: str, prefix: str, chunks: list[list[str]], fd: int) -> NoReturn:
    status = 1
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                blob = pickle.dumps(_read_chunk(folder, prefix, chunk), pickle.HIGHEST_PROTOCOL)
                out.write(len(blob).to_bytes(8, "little") + blob)
                out.flush()
        status = 0
    finally:
        os._exit(status)


def _receive(stream: BinaryIO) -> list[Parsed] | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    blob = stream.read(size)
    if len(blob) < size:
        return None
    results: list[Parsed] = pickle.loads(blob)
    return results


def _load_inventory(root: Path, official: Referential | Callable[[], Referential]) -> Inventory:
    problems = ProblemCollector()
    warnings: list[Problem] = []
    if not root.is_dir():
        problems.add(str(root), None, "", "inventory directory not found",
                     hint="pass the directory holding hosting.yaml with --inventory")
        problems.raise_if_any()
    loaded = load_hosting(root, problems)
    communes: list[CommuneDecl] = []
    folder = root / COMMUNES_DIR
    names = _commune_names(folder)
    # `_display(root, folder / name)`, without a Path per file.
    prefix = _display(root, folder)
    where = str(folder)
    helpers = _read_all(where, names, prefix)
    reading: Iterator[Parsed] = helpers
    if isinstance(official, Referential):
        referential = official
    else:
        first = next(helpers, None)  # start the helpers (and read a first chunk), then load it
        try:
            referential = official()
        except BaseException:
            helpers.close()
            raise
        reading = chain([first] if names else [], helpers)
    for name, data in zip(names, reading, strict=True):
        display = f"{prefix}/{name}"
        parsed = _with_lines(data, f"{where}/{name}", display)
        decl = _check_commune(name, display, parsed, referential, problems, warnings)
        if decl is not None:
            communes.append(decl)
    _check_cross_file(loaded[0] if loaded else None, communes, problems)
    problems.raise_if_any()
    assert loaded is not None
    hosting, lines = loaded
    return Inventory(root, hosting, lines, communes, referential.version, warnings)
