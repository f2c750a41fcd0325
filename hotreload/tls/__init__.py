"""hotreload.tls: a live `ssl.SSLContext` kept current from certificate, key and CA files.

(The note on the swap is filled in below, with the evidence.)
"""

from ._checks import CertificateInfo, TLSCertificateError, TLSFiles
from ._live import ClientTLS, Generation, ServerTLS
from ._make import Issued, self_signed
from ._servers import UvicornTLS, run_uvicorn_cli

__all__ = [
    "CertificateInfo",
    "ClientTLS",
    "Generation",
    "Issued",
    "ServerTLS",
    "TLSCertificateError",
    "TLSFiles",
    "UvicornTLS",
    "run_uvicorn_cli",
    "self_signed",
]
