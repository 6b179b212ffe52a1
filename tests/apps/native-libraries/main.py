"""Imports every native library of requirements.in and reports which C extension each loaded."""

import importlib
import json
import os
import subprocess
import sys

# module to import → the module that must be a compiled extension (or, for uwsgi, the server binary)
CHECKS = {
    "crcmod": "crcmod._crcfunext",
    "lxml": "lxml.etree",
    "MySQLdb": "MySQLdb._mysql",
    "netifaces": "netifaces",
    "psycopg2": "psycopg2._psycopg",
    "pylibmc": "_pylibmc",
    "pyodbc": "pyodbc",
    "ldap": "_ldap",
    "magic": None,  # ctypes: libmagic1 from apt-packages.txt
    "uwsgi": None,  # a server binary, not a module
}


def check(name, ext):
    try:
        if name == "uwsgi":
            out = subprocess.run(["uwsgi", "--version"], capture_output=True, text=True, check=True).stdout.strip()
            return {"ok": True, "detail": f"uwsgi {out}"}
        if name == "magic":
            import magic

            return {"ok": True, "detail": magic.from_buffer(b"%PDF-1.4\n")}
        importlib.import_module(name)
        mod = importlib.import_module(ext)
        path = getattr(mod, "__file__", "") or ""
        return {"ok": path.endswith(".so"), "detail": path}
    except Exception as exc:  # reported, not raised: the test prints every failure at once
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    results = {name: check(name, ext) for name, ext in sorted(CHECKS.items())}
    ok = sum(r["ok"] for r in results.values())
    print(json.dumps({"results": results, "python": sys.version.split()[0], "port": os.environ.get("PORT")}, indent=2))
    print(f"native libraries: {ok} of {len(results)} build and import")
    sys.exit(0 if ok == len(results) else 1)
