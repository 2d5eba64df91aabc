"""The communes' request portal (`relais portal`): a French form behind the syndicate's nginx."""

from relais.portal.app import PortalConfig, create_app

__all__ = ["PortalConfig", "create_app"]
