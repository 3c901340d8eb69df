"""`omnisdk demo`: a synthetic omnichannel store on the embedded SQLite default."""

from ._run import run_demo

__all__ = ["run_demo"]
