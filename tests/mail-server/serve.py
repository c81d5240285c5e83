"""A real SMTP server for examroom's e-mail tests (tests/it/kit/mail.rs starts it).

aiosmtpd (PyPI; installed by scripts/mail-test-server) speaks the protocol: EHLO,
STARTTLS or implicit TLS, AUTH PLAIN/LOGIN, MAIL/RCPT/DATA, with its own replies.
This file only wires it: one listener on 127.0.0.1, a port chosen by the kernel, and a
handler that stores each accepted message in a Maildir (tmp/ then rename into new/, so
a reader never sees half a message) with what the session was in headers on top:
`X-MailFrom` and `X-RcptTo` (the envelope, as aiosmtpd's own Mailbox handler writes
them), `X-Peer-TLS` (the TLS version, or `none`) and `X-Authenticated` (the AUTH user,
or `no`).

    python serve.py --maildir DIR --tls starttls|implicit|none \
        [--cert PEM --key PEM] [--user NAME --password PW] \
        [--reply ADDRESS "451 4.3.0 try later"]...

Prints `listening PORT` on stdout once it accepts connections, then `received NAME` for
each message stored as new/NAME. `--reply` makes RCPT TO
for ADDRESS answer that line (a full mailbox, an unknown user) instead of 250.
"""

import argparse
import asyncio
import itertools
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class MaildirHandler:
    def __init__(self, maildir, replies):
        self.maildir = maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.replies = replies
        self.count = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        tls = server.transport.get_extra_info("ssl_object")
        top = (
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Peer-TLS: {tls.version() if tls else 'none'}\r\n"
            f"X-Authenticated: {session.auth_data if session.authenticated else 'no'}\r\n"
        ).encode()
        # Written by hand rather than with Python's mailbox module, which rewrites line
        # ends: the test reads exactly the bytes that arrived. Numbered names keep the
        # order of arrival.
        name = f"{next(self.count):06d}.{os.getpid()}.eml"
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(top + envelope.original_content)
        os.rename(tmp, os.path.join(self.maildir, "new", name))
        # Tells the test a message is there (it waits on this line, not on a timer).
        print(f"received {name}", flush=True)
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--tls", choices=["starttls", "implicit", "none"], default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--reply", nargs=2, action="append", default=[], metavar=("ADDRESS", "LINE"))
    args = ap.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=args.user if ok else None)

    handler = MaildirHandler(args.maildir, {a.lower(): line for a, line in args.reply})
    auth = args.user is not None

    def factory():
        return SMTP(
            handler,
            hostname="mail.examroom.test",
            # STARTTLS mode: nothing but EHLO/STARTTLS/QUIT before the upgrade.
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticator if auth else None,
            auth_required=auth,
            # Implicit TLS is encrypted from the first byte, which aiosmtpd does not
            # see as TLS; plain mode with AUTH is the local-relay case.
            auth_require_tls=args.tls == "starttls",
        )

    async def serve():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, sock=sock, ssl=context if args.tls == "implicit" else None
        )
        print(f"listening {sock.getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
