"""Throw-away certificates for TLS tests, made with the openssl CLI in a
directory of the test's: a CA, and certificates it signs with the IP/DNS
subjectAltNames a client verifies against the address it dials.

    d = tempfile.mkdtemp()
    tlscerts.make_ca(d, "ca")
    tlscerts.make_cert(d, "ca", "node1", ips=["127.0.0.11"])
    # d/ca.crt, d/node1.crt, d/node1.key

A certificate without extendedKeyUsage serves both as a server's and as a
client's (a cluster node presents its own certificate to its peers).
"""

import os
import subprocess


def openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".crt")


def make_cert(d, ca, name, ips=("127.0.0.1",), dns=("localhost",), eku=None):
    """d/name.crt + d/name.key signed by d/ca.crt; eku e.g. "clientAuth"."""
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
            "-keyout", name + ".key", "-out", name + ".csr")
    sans = ["IP:" + i for i in ips] + ["DNS:" + n for n in dns]
    with open(os.path.join(d, name + ".ext"), "w") as f:
        if sans:
            f.write("subjectAltName=%s\n" % ",".join(sans))
        if eku:
            f.write("extendedKeyUsage=%s\n" % eku)
    openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt")
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


def read(path):
    with open(path, "rb") as f:
        return f.read()
