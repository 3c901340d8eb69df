"""Serve provider imitations until interrupted, for demos and manual tries.

    python -m omnisdk.testing.imitations twilio:8101 sendgrid:8102 square

Each argument is an imitation's name, optionally with a port (a free one otherwise); the base URLs
are printed, one a line, to put in the channels' `base_url` settings.
"""

from __future__ import annotations

import argparse
import threading

from . import (
    FCMImitation,
    Imitation,
    LobImitation,
    MailgunImitation,
    MetaGraphImitation,
    SendGridImitation,
    SquareImitation,
    TwilioImitation,
    VonageImitation,
    WebPushImitation,
)

KINDS: dict[str, type[Imitation]] = {
    "fcm": FCMImitation,
    "lob": LobImitation,
    "mailgun": MailgunImitation,
    "meta": MetaGraphImitation,
    "sendgrid": SendGridImitation,
    "square": SquareImitation,
    "twilio": TwilioImitation,
    "vonage": VonageImitation,
    "webpush": WebPushImitation,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m omnisdk.testing.imitations", description=__doc__.splitlines()[0])
    parser.add_argument("imitations", nargs="+", metavar="NAME[:PORT]", help=", ".join(KINDS))
    args = parser.parse_args(argv)
    running: list[Imitation] = []
    try:
        for spec in args.imitations:
            name, _, port = spec.partition(":")
            if name not in KINDS:
                parser.error(f"unknown imitation {name!r}; choose from {', '.join(KINDS)}")
            running.append(KINDS[name](port=int(port or 0)).start())
            print(f"{name} {running[-1].base_url}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for imitation in running:
            imitation.stop()


if __name__ == "__main__":
    main()
