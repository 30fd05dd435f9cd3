"""A real SMTP server on loopback for the email sink's tests: aiosmtpd with
STARTTLS (required) or implicit TLS, AUTH required, each message written to
a directory as NNNN.eml with NNNN.json (envelope, whether the session was
authenticated and encrypted, and the message as a mail client reads it:
the decoded subject and both parts).

usage: smtp_server.py MODE PORT OUT_DIR CERT KEY USER PASSWORD
MODE is starttls or implicit. Runs until killed; writes OUT_DIR/ready
when it accepts connections.
"""

import email
import email.policy
import json
import pathlib
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, out_dir, cert, key, user, password = sys.argv[1:8]
out = pathlib.Path(out_dir)


class Recorder:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = out / f"{self.count:04}"
        raw = envelope.original_content or b""
        base.with_suffix(".eml").write_bytes(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        meta = {
            "subject": str(message["subject"]),
            "text": plain.get_content() if plain else None,
            "html": html.get_content() if html else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(session.authenticated),
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "encrypted": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "login": getattr(session, "login_data", None) and session.login_data.decode(),
        }
        base.with_suffix(".json").write_text(json.dumps(meta))
        return "250 2.0.0 queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    if ok:
        session.login_data = auth_data.login
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
common = dict(
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticator,
    auth_required=True,
)
if mode == "starttls":
    controller = Controller(
        Recorder(), tls_context=context, require_starttls=True, **common
    )
else:
    # Implicit TLS: the whole session is encrypted, AUTH included.
    controller = Controller(
        Recorder(), ssl_context=context, auth_require_tls=False, **common
    )
controller.start()
(out / "ready").write_text("ready")
while True:
    time.sleep(3600)
