"""The lab: every `provider: lab` host of the Plan as a systemd-nspawn machine on this machine.

Library first (the CLI `relais lab` is a thin layer over it)::

    lab = Lab(plan, reporter=RichReporter())
    lab.up()                       # converge; returns what changed
    lab.exec("msg-caen-1", ["hostname"]).stdout
    ssh_params("msg-caen-1")       # address, port, user, key, known_hosts (for pyinfra)
    lab.down()
"""

from relais.lab.config import LabHost, LabSpec, lab_spec
from relais.lab.lab import HostStatus, Lab, LabStatus, UpResult
from relais.lab.paths import LabPaths
from relais.lab.progress import Reporter, RichReporter
from relais.lab.ssh import SshParams, ssh_params

__all__ = [
    "HostStatus",
    "Lab",
    "LabHost",
    "LabPaths",
    "LabSpec",
    "LabStatus",
    "Reporter",
    "RichReporter",
    "SshParams",
    "UpResult",
    "lab_spec",
    "ssh_params",
]
