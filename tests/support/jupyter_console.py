"""A real Jupyter Server for tests/consoles.rs: its own password sign-in
form (with its _xsrf check), sessions and WebSockets, configured as
docs/consoles.md tells a Jupyter console behind netwarden to be.

    python jupyter_console.py DIR PORT

DIR holds Jupyter's config, data and runtime directories and is the root
it serves; PORT is the loopback port. The password is "right-password".
"""

import os
import sys

DIR, PORT = sys.argv[1], sys.argv[2]
for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
    os.environ[name] = os.path.join(DIR, name.lower())

from jupyter_server.auth import passwd  # noqa: E402
from jupyter_server.serverapp import ServerApp  # noqa: E402

ServerApp.launch_instance(
    argv=[
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={PORT}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        # CI and this machine run tests as root.
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={DIR}",
        # Behind netwarden: the client from its X-Real-IP / X-Forwarded-For,
        # the public name in Host, and the password form as the only way in.
        "--ServerApp.trust_xheaders=True",
        "--ServerApp.allow_remote_access=True",
        "--IdentityProvider.token=",
        f"--PasswordIdentityProvider.hashed_password={passwd('right-password')}",
    ]
)
