"""The xmpp flavor: one Prosody per host, one virtual host and one group-chat component per commune.

- :mod:`relais.xmpp.config` renders Prosody's configuration from the Plan (pure);
- :mod:`relais.xmpp.accounts` decides which agents' accounts to create, re-key or disable (pure);
- :mod:`relais.xmpp.web` renders the Converse.js page and its nginx server block (pure);
- :mod:`relais.xmpp.converse` fetches the pinned Converse.js release with npm on the controller.
"""

from __future__ import annotations

from relais.errors import RelaisError


class XmppError(RelaisError):
    """The xmpp flavor cannot be configured or deployed as declared."""
