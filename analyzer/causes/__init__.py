"""Go configuration: where each network setting comes from, what it makes tools contact, and the
cause behind each contact.

``config_from_env`` resolves the go command's chain (environment, GOENV file, ``$GOROOT/go.env``,
built-in defaults); ``load_config_from`` reads a saved HOME tree or env file; ``apply_causes``
(in ``causes``) puts a cause on every contact.
"""

from .goconfig import NETWORK_VARS, GoConfig, Setting
from .saved import load_config_from
from .sources import config_from_env, find_go_binary

__all__ = ["NETWORK_VARS", "GoConfig", "Setting", "config_from_env", "find_go_binary",
           "load_config_from"]
