"""The inventory as people write it (schema version 1).

These models describe `inventory/hosting.yaml` and
`inventory/communes/<insee>-<slug>.yaml`. They check shape and local rules
only; rules that need the official referential or several files at once live
in :mod:`relais.inventory`. Everything downstream reads the Plan, not these.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from relais.monitoring.settings import MonitoringSettings
from relais.units import Days, SizeMiB

SCHEMA_VERSION = 1

_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})+$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + DOMAIN_RE.pattern[1:-1] + "$", re.I)
UNIX_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
INSEE_RE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
SIREN_RE = re.compile(r"^\d{9}$")
NAME_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SSH_KEY_RE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) "
    r"[A-Za-z0-9+/]+={0,3}( .*)?$"
)
EU_EEA_COUNTRIES = frozenset((
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
))


def _domain(value: str) -> str:
    lowered = value.strip().lower().rstrip(".")
    if not DOMAIN_RE.match(lowered):
        raise ValueError("a DNS name such as saint-lo.fr or caen.messagerie.example.fr")
    return lowered


def _email(value: str) -> str:
    value = value.strip()
    if not EMAIL_RE.match(value):
        raise ValueError("an e-mail address such as mairie@example.fr")
    return value


def _insee(value: str) -> str:
    value = value.strip().upper()
    if not INSEE_RE.match(value):
        raise ValueError('an INSEE code of 5 characters, e.g. "14118", "2A004" or "97411"')
    return value


def _siren(value: str) -> str:
    value = value.replace(" ", "")
    if not SIREN_RE.match(value):
        raise ValueError('a SIREN of 9 digits, e.g. "211401187"')
    return value


def _ssh_key(value: str) -> str:
    value = value.strip()
    if not SSH_KEY_RE.match(value):
        raise ValueError("an OpenSSH public key line, e.g. 'ssh-ed25519 AAAA... name@host'")
    return value


def _country(value: str) -> str:
    value = value.strip().upper()
    if not re.match(r"^[A-Z]{2}$", value):
        raise ValueError("an ISO 3166 two-letter country code, e.g. FR")
    return value


Domain = Annotated[str, AfterValidator(_domain)]
Email = Annotated[str, AfterValidator(_email)]
Insee = Annotated[str, Field(strict=True), AfterValidator(_insee)]
Siren = Annotated[str, Field(strict=True), AfterValidator(_siren)]
SshKey = Annotated[str, AfterValidator(_ssh_key)]
Country = Annotated[str, AfterValidator(_country)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Identifier = Annotated[str, StringConstraints(pattern=NAME_ID_RE.pattern)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Role(StrEnum):
    MESSAGING = "messaging"
    PROXY = "proxy"
    DATABASE = "database"
    BACKUP = "backup"
    MONITOR = "monitor"


class Flavor(StrEnum):
    MATRIX_DEDICATED = "matrix-dedicated"
    MATRIX_SHARED = "matrix-shared"
    XMPP = "xmpp"


class Status(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    OFFBOARDED = "offboarded"

    @property
    def holds_capacity(self) -> bool:
        """Approved, active and suspended tenants keep their place (and their data)."""
        return self in (Status.APPROVED, Status.ACTIVE, Status.SUSPENDED)


# --------------------------------------------------------------------------- hosting


HTTPS_URL = r"^https://[a-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$"


class Syndicate(Strict):
    name: Text
    domain: Domain
    contact: Email
    siren: Siren | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 .()-]{6,25}$")] | None = None
    web_client: Annotated[str, StringConstraints(pattern=HTTPS_URL)] | None = None
    """The syndicate's own Matrix web client (default https://element.<domain>)."""


class Site(Strict):
    country: Country
    city: Text
    region: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    """The cloud provider's region for this site (e.g. Scaleway `fr-par`), if any."""


class Capacity(Strict):
    ram: SizeMiB
    disk: SizeMiB
    vcpu: int = Field(ge=1, le=512)


class Host(Strict):
    site: Identifier
    roles: list[Role] = Field(min_length=1)
    provider: Literal["lab", "openstack", "scaleway", "existing"]
    capacity: Capacity
    address: ipaddress.IPv4Address | None = None
    public_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @model_validator(mode="after")
    def _unique_roles(self) -> Host:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("each role once")
        return self


class Admin(Strict):
    name: Text
    email: Email
    ssh_keys: list[SshKey] = Field(min_length=1)


class Retention(Strict):
    messages: Days | None = None
    logs: Days | None = None
    logs_justification: Text | None = None
    """Why logs are kept outside the CNIL's 6-12 months, when they are."""


class BackupKeep(Strict):
    daily: int = Field(default=7, ge=0, le=366)
    weekly: int = Field(default=4, ge=0, le=104)
    monthly: int = Field(default=6, ge=0, le=120)


class BackupPolicy(Strict):
    time: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "02:30"
    keep: BackupKeep = Field(default_factory=BackupKeep)
    encryption: Literal["repokey-blake2", "keyfile-blake2", "none"] = "repokey-blake2"


class Federation(Strict):
    """Federation is limited to the syndicate's own domains unless widened here."""

    allow: list[Domain] = []


class MessagingSettings(Strict):
    """Service settings a syndicate may relax per tenant (policies flag risky ones)."""

    registration: Literal["closed", "open"] | None = None
    url_previews: bool | None = None
    url_preview_ip_blacklist: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None
    admin_api_exposed: bool | None = None


class Network(Strict):
    admin_sources: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    """Where operators connect from (SSH is open to these and to the controller only)."""


class Waiver(Strict):
    rule: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9-]*[0-9]+[a-z]?$")]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    reason: Text
    expires: date


class Defaults(Strict):
    retention: Retention = Field(
        default_factory=lambda: Retention.model_validate({"messages": "1y", "logs": "180d"})
    )
    backup: BackupPolicy = Field(default_factory=BackupPolicy)
    federation: Federation = Field(default_factory=Federation)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)


class SharedHomeserver(Strict):
    host: Identifier
    server_name: Domain | None = None


class LabSettings(Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.77.0.0/24")
    bridge: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,14}$")] = "relais0"


class Hosting(Strict):
    version: Literal[1]
    syndicate: Syndicate
    sites: dict[Identifier, Site] = Field(min_length=1)
    hosts: dict[Identifier, Host] = Field(min_length=1)
    admins: dict[Annotated[str, StringConstraints(pattern=UNIX_NAME_RE.pattern)], Admin] = {}
    defaults: Defaults = Field(default_factory=Defaults)
    shared_homeserver: SharedHomeserver | None = None
    network: Network = Field(default_factory=Network)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    waivers: list[Waiver] = []
    lab: LabSettings = Field(default_factory=LabSettings)


# --------------------------------------------------------------------------- communes


class CommuneId(Strict):
    insee: Insee
    name: Text
    siren: Siren | None = None  # mandatory where the official list has one


class Dpo(Strict):
    name: Text
    email: Email


class Contacts(Strict):
    mairie: Email
    dpo: Dpo


class Agent(Strict):
    name: Text
    email: Email
    login: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = None


class Tenant(Strict):
    flavor: Flavor
    domain: Domain | None = None
    agents: list[Agent] = []
    seats: int | None = Field(default=None, ge=1, le=100_000)
    retention: Retention = Field(default_factory=Retention)
    status: Status
    federation: Federation = Field(default_factory=Federation)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)

    @model_validator(mode="after")
    def _seats_cover_agents(self) -> Tenant:
        if self.seats is not None and self.seats < len(self.agents):
            raise ValueError(f"seats ({self.seats}) is less than the {len(self.agents)} agents listed")
        if self.flavor is Flavor.MATRIX_SHARED and self.domain is not None:
            raise ValueError(
                "a matrix-shared tenant has no domain of its own (it lives on the syndicate's "
                "homeserver); remove `domain` or choose matrix-dedicated"
            )
        return self

    @property
    def accounts(self) -> int:
        return self.seats if self.seats is not None else len(self.agents)


class CommuneFile(Strict):
    version: Literal[1]
    commune: CommuneId
    contacts: Contacts
    tenant: Tenant
