"""Pure lab logic: addresses, resolver records, isolation rules, command lines, apt sources."""

from __future__ import annotations

import pytest

from relais.errors import LabError
from relais.lab import config
from relais.lab.config import LabSpec, make_spec
from relais.plan import DnsRecord

HOSTS: list[tuple[str, str, str | None]] = [
    ("msg-caen-1", "msg-caen-1.infra.messagerie.normandie.example", "10.77.0.11"),
    ("msg-rouen-1", "msg-rouen-1.infra.messagerie.normandie.example", "10.77.0.12"),
    ("backup-rouen", "backup-rouen.infra.messagerie.normandie.example", "10.77.0.21"),
    ("mon-caen", "mon-caen.infra.messagerie.normandie.example", "10.77.0.31"),
]


def spec() -> LabSpec:
    return make_spec("relais0", "10.77.0.0/24", "10.77.0.1", HOSTS)


def record(name: str, rtype: str, value: str) -> DnsRecord:
    return DnsRecord(name=name, type=rtype, value=value, managed_by="syndicate")  # type: ignore[arg-type]


def test_example_spec() -> None:
    lab = spec()
    assert lab.prefixlen == 24
    assert lab.proxy_url == "http://10.77.0.1:3142"
    assert lab.host("msg-caen-1.infra.messagerie.normandie.example").address == "10.77.0.11"
    assert lab.host("mon-caen").domain == "infra.messagerie.normandie.example"
    assert LabSpec.from_dict(lab.as_dict()) == lab


@pytest.mark.parametrize(
    ("bridge", "subnet", "gateway", "hosts", "message"),
    [
        ("relais-bridge-too-long", "10.77.0.0/24", "10.77.0.1", [], "not a valid interface name"),
        ("relais0", "10.77.0.0/33", "10.77.0.1", [], "not an IPv4 network"),
        ("relais0", "10.77.0.1/24", "10.77.0.1", [], "not an IPv4 network"),
        ("relais0", "8.8.0.0/24", "8.8.0.1", [], "not a private range"),
        ("relais0", "10.77.0.0/24", "10.78.0.1", [], "gateway 10.78.0.1 is not a host address"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("h1", "h1.x.example", "10.78.0.5")],
         "not a host address of the lab subnet"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("h1", "h1.x.example", "10.77.0.255")],
         "not a host address of the lab subnet"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("h1", "h1.x.example", "10.77.0.1")],
         "already used by the lab gateway"),
        ("relais0", "10.77.0.0/24", "10.77.0.1",
         [("h1", "h1.x.example", "10.77.0.5"), ("h2", "h2.x.example", "10.77.0.5")],
         "already used by lab host h1"),
        ("relais0", "10.77.0.0/24", "10.77.0.1",
         [("h1", "h1.x.example", "10.77.0.5"), ("h1", "h1.x.example", "10.77.0.6")], "declared twice"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("H_1", "h1.x.example", "10.77.0.5")],
         "not a valid host name"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("h1", "h1.x.example", None)], "has no address"),
        ("relais0", "10.77.0.0/24", "10.77.0.1", [("h1", "h1.x.example", "10.77.0")], "not an IPv4"),
    ],
)
def test_bad_lab_networks_are_refused_clearly(
    bridge: str, subnet: str, gateway: str, hosts: list[tuple[str, str, str | None]], message: str
) -> None:
    with pytest.raises(LabError, match=message):
        make_spec(bridge, subnet, gateway, hosts)


def test_unknown_host_names_the_known_ones() -> None:
    with pytest.raises(LabError) as error:
        spec().host("nope")
    assert error.value.hint is not None and "msg-caen-1" in error.value.hint


def test_subnet_overlapping_a_controller_network_is_refused() -> None:
    config.check_subnet_free(spec(), [("eth0", "192.0.2.0/24"), ("eth0", "default"),
                                      ("relais0", "10.77.0.0/24")])
    with pytest.raises(LabError, match=r"overlaps 10\.0\.0\.0/8 on interface wg0"):
        config.check_subnet_free(spec(), [("wg0", "10.0.0.0/8")])


def test_resolver_serves_hosts_and_plan_records() -> None:
    records = [
        record("msg-caen-1.infra.messagerie.normandie.example", "A", "10.77.0.11"),
        record("taillepied.messagerie.normandie.example", "A", "10.77.0.11"),
        record("_xmpp-server._tcp.taillepied.messagerie.normandie.example", "SRV",
               "0 5 5269 msg-caen-1.infra.messagerie.normandie.example."),
        record("conference.taillepied.messagerie.normandie.example.", "CNAME",
               "taillepied.messagerie.normandie.example."),
        record("taillepied.messagerie.normandie.example", "TXT", 'v=spf1 -all "x"'),
        record("taillepied.messagerie.normandie.example", "AAAA", "2001:db8::1"),
    ]
    lines = config.dnsmasq_records(spec(), records)
    assert "host-record=msg-caen-1.infra.messagerie.normandie.example,msg-caen-1,10.77.0.11" in lines
    assert "host-record=taillepied.messagerie.normandie.example,10.77.0.11" in lines
    assert ("srv-host=_xmpp-server._tcp.taillepied.messagerie.normandie.example,"
            "msg-caen-1.infra.messagerie.normandie.example,5269,0,5") in lines
    assert ("cname=conference.taillepied.messagerie.normandie.example,"
            "taillepied.messagerie.normandie.example") in lines
    assert 'txt-record=taillepied.messagerie.normandie.example,"v=spf1 -all \\"x\\""' in lines
    # the host's own A record is not duplicated; AAAA is left out (the lab is IPv4 only)
    assert sum("10.77.0.11" in line and "msg-caen-1." in line for line in lines) == 1
    assert not any("2001:db8" in line for line in lines)


def test_bad_srv_record_is_refused() -> None:
    with pytest.raises(LabError, match="priority weight port target"):
        config.dnsmasq_records(spec(), [record("_x._tcp.a.example", "SRV", "5269 target")])


def test_resolver_listens_on_the_bridge_only_and_forwards_nothing() -> None:
    conf = config.dnsmasq_conf(spec(), [], user="dnsmasq").splitlines()
    for line in ("listen-address=10.77.0.1", "bind-interfaces", "no-resolv", "no-hosts",
                 "local=/#/", "user=dnsmasq"):
        assert line in conf
    assert not any(line.startswith("server=") for line in conf)


def test_isolation_rules() -> None:
    rules = config.nft_ruleset(spec())
    assert "hook forward" in rules
    assert 'iifname "relais0" oifname != "relais0" counter drop' in rules
    assert 'oifname "relais0" iifname != "relais0" counter drop' in rules
    assert "ip daddr 10.77.0.1 tcp dport { 53, 3142 } accept" in rules
    assert "masquerade" not in rules and "nat" not in rules


DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.invalid/debian
Suites: bookworm
"""


def test_apt_sources_of_the_machine() -> None:
    sources = config.parse_deb822_sources(DEB822)
    assert len(sources) == 2
    assert config.debian_mirror(sources, "bookworm") == "http://mirror.invalid/debian"
    assert config.proxied_uris(sources) == ["http://mirror.invalid/debian",
                                            "http://mirror.invalid/debian-security"]
    one_line = config.parse_one_line_sources(
        "deb [signed-by=/k.gpg] http://mirror.invalid/debian/ bookworm main # c\n#deb x y\n"
    )
    assert config.debian_mirror(one_line, "bookworm") == "http://mirror.invalid/debian"


def test_no_http_source_is_a_clear_error() -> None:
    sources = config.parse_one_line_sources("deb https://mirror.invalid/debian bookworm main\n")
    with pytest.raises(LabError, match="no http:// apt source") as error:
        config.debian_mirror(sources, "bookworm")
    assert error.value.hint is not None and "https://mirror.invalid/debian" in error.value.hint


def test_package_proxy_serves_only_the_machine_sources() -> None:
    conf = config.acng_conf(gateway="10.77.0.1", cache_dir="/c", log_dir="/l", run_dir="/r",
                            uris=["http://mirror.invalid/debian"]).splitlines()
    assert "BindAddress: 10.77.0.1" in conf
    assert "ForceManaged: 1" in conf
    assert "Remap-relais1: mirror.invalid/debian ; http://mirror.invalid/debian/" in conf


def test_nspawn_command_line() -> None:
    lab = spec()
    argv = config.nspawn_argv(lab.host("msg-caen-1"), root="/r", bridge="relais0", uuid="u")
    assert argv[0] == "systemd-nspawn"
    for arg in ("--boot", "--register=no", "--keep-unit", "--network-bridge=relais0",
                "--machine=msg-caen-1", "--directory=/r", "--resolv-conf=off"):
        assert arg in argv


def test_host_files() -> None:
    lab = spec()
    files = config.host_files(lab, lab.host("msg-rouen-1"), machine_id="ab" * 16,
                              authorized_key="ssh-ed25519 AAAA relais")
    assert files["etc/hostname"] == "msg-rouen-1\n"
    assert "10.77.0.12\tmsg-rouen-1.infra.messagerie.normandie.example msg-rouen-1" in files["etc/hosts"]
    assert "nameserver 10.77.0.1" in files["etc/resolv.conf"]
    network = files["etc/systemd/network/10-relais-host0.network"]
    assert "Address=10.77.0.12/24" in network and "Gateway" not in network
    assert 'Acquire::http::Proxy "http://10.77.0.1:3142/";' in files["etc/apt/apt.conf.d/01relais-lab-proxy"]
    for rel in files:
        config.relative(rel)


def test_relative_refuses_escapes() -> None:
    for bad in ("/etc/passwd", "../x", "etc/../../x"):
        with pytest.raises(ValueError):
            config.relative(bad)


def test_etc_hosts_block_is_replaced_and_removed() -> None:
    original = "127.0.0.1 localhost\n"
    block = config.etc_hosts_block(spec())
    once = config.replace_managed_block(original, block)
    assert config.replace_managed_block(once, block) == once
    assert "10.77.0.21\tbackup-rouen.infra.messagerie.normandie.example backup-rouen" in once
    assert config.replace_managed_block(once, None) == original
    assert config.replace_managed_block("no newline", block).startswith("no newline\n")


def test_known_hosts_and_ssh_config() -> None:
    lab = spec()
    line = config.known_hosts_line(lab.host("mon-caen"), "ssh-ed25519 AAAAkey root@mon-caen")
    assert line == "mon-caen,mon-caen.infra.messagerie.normandie.example,10.77.0.31 ssh-ed25519 AAAAkey"
    text = config.ssh_config(lab, identity="/k", known_hosts="/kh")
    assert "StrictHostKeyChecking yes" in text and "StrictHostKeyChecking no" not in text
    assert "Host mon-caen mon-caen.infra.messagerie.normandie.example\n  HostName 10.77.0.31" in text


def test_remote_command() -> None:
    assert config.remote_command(["echo $HOME"]) == "echo $HOME"
    assert config.remote_command(["echo", "a b", "$x"]) == "echo 'a b' '$x'"


def test_etc_hosts_block_goes_before_another_lab_instance_declaring_the_same_names() -> None:
    other = (
        "# BEGIN relais lab c: managed by `relais lab up`, removed by `relais lab down`\n"
        "10.81.0.21\tbackup-rouen.infra.messagerie.normandie.example backup-rouen\n"
        "# END relais lab c\n"
    )
    original = "127.0.0.1 localhost\n" + other
    lab = spec()
    updated = config.replace_managed_block(original, config.etc_hosts_block(lab))
    # the resolver reads top down: this lab's address is the one the names resolve to
    assert updated.index("10.77.0.21") < updated.index("10.81.0.21")
    assert updated.endswith(other)
    assert config.other_instances_declaring(updated, lab) == [other.splitlines()[0]]
    assert config.other_instances_declaring(config.replace_managed_block(original, None), lab) == [
        other.splitlines()[0]
    ]
    unrelated = other.replace("backup-rouen.infra.messagerie.normandie.example backup-rouen", "x.example x")
    assert config.other_instances_declaring(unrelated, lab) == []
