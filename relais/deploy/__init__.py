"""`relais deploy`: converge hosts to the Plan with pyinfra, through its Python API."""

from relais.deploy.context import HostContext
from relais.deploy.runner import DeployReport, HostReport, OperationResult, run_deploy

__all__ = ["DeployReport", "HostContext", "HostReport", "OperationResult", "run_deploy"]
