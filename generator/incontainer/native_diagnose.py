"""One line out of pip's wall of text when an sdist fails to build: the missing piece and its Ubuntu package.

Runs inside the image, under any runtime's Python (2.7 included) and with only the standard library:
``python native_diagnose.py PIP_LOG`` reads pip's output (or its ``--log`` file) and prints what is
missing and which package has it, else the last ``error:`` line; it always exits 0 (it explains a
failure, it is not one). No import from the generator package, and no syntax newer than Python 2.7.
"""

import re
import sys

# header (as the compiler names it) -> the Ubuntu package that ships it
HEADERS = {
    "Python.h": "the interpreter's headers (python3-dev, or pythonX.Y-dev for the runtime's version)",
    "libxml/xmlversion.h": "libxml2-dev",
    "libxml/parser.h": "libxml2-dev",
    "libxslt/xsltconfig.h": "libxslt1-dev",
    "libxslt/xslt.h": "libxslt1-dev",
    "libexslt/exslt.h": "libxslt1-dev",
    "ffi.h": "libffi-dev",
    "openssl/ssl.h": "libssl-dev",
    "openssl/opensslv.h": "libssl-dev",
    "openssl/aes.h": "libssl-dev",
    "sql.h": "unixodbc-dev",
    "sqlext.h": "unixodbc-dev",
    "lber.h": "libldap2-dev",
    "ldap.h": "libldap2-dev",
    "sasl/sasl.h": "libsasl2-dev",
    "libmemcached/memcached.h": "libmemcached-dev",
    "zlib.h": "zlib1g-dev",
    "jpeglib.h": "libjpeg-dev",
    "curl/curl.h": "libcurl4-openssl-dev",
    "magic.h": "libmagic-dev",
    "pg_config.h": "libpq-dev",
    "libpq-fe.h": "libpq-dev",
    "mysql.h": "libmysqlclient-dev (default-libmysqlclient-dev)",
    "mysql/mysql.h": "libmysqlclient-dev (default-libmysqlclient-dev)",
}
MYSQL = "libmysqlclient-dev (default-libmysqlclient-dev), and pkg-config"

_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.,]+Z?\s")  # pip --log lines start with a timestamp
_MISSING_HEADER = re.compile(r"fatal error: ([\w./+-]+\.h): No such file or directory")
_NO_COMPILER = re.compile(
    r"(?:\b(?:x86_64-linux-gnu-)?(gcc|cc|g\+\+|c\+\+)(?:-\d+)?: (?:command )?not found)"
    r"|(?:No such file or directory: '(?:[\w/.-]*/)?(?:x86_64-linux-gnu-)?(gcc|cc|g\+\+|c\+\+)(?:-\d+)?')"
    r"|(?:command '(?:[\w/.-]*/)?(?:x86_64-linux-gnu-)?(gcc|cc|g\+\+|c\+\+)(?:-\d+)?' failed: No such file or directory)"
    r"|(?:unable to execute '?(?:[\w/.-]*/)?(?:x86_64-linux-gnu-)?(gcc|cc|g\+\+|c\+\+)(?:-\d+)?'?: No such file or directory)"
)
_COMPILER_FAILED = re.compile(
    r"command '(?:[\w/.-]*/)?(?:x86_64-linux-gnu-)?(?:gcc|cc|g\+\+|c\+\+)(?:-\d+)?' failed"
    r"|Command '\['(?:[\w/.-]*/)?(?:x86_64-linux-gnu-)?(?:gcc|cc|g\+\+|c\+\+)(?:-\d+)?'.*returned non-zero exit status"
)
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
_ERROR = re.compile(r"^\s*(?:error|ERROR|Error|Exception|\w+Error): ")
_PIP_NOISE = ("subprocess-exited-with-error", "Failed building wheel", "Failed to build", "Could not build wheels", "metadata-generation-failed")


def _lines(text):
    """pip's lines without the --log timestamps."""
    return [_LOG_PREFIX.sub("", line).rstrip() for line in text.splitlines()]


_NAMED = re.compile(
    r"^(?:Collecting ([A-Za-z0-9][A-Za-z0-9._-]*)"  # pip's own lines; a build environment's pip indents its own
    r"|Processing \S*?([A-Za-z0-9][A-Za-z0-9_.]*)-\d[^/\s]*\.(?:tar\.gz|zip|tar\.bz2|whl)"  # a file from --find-links
    r"|\s{0,2}(?:Building wheel for|Preparing metadata \(\S+\) for) ([A-Za-z0-9][A-Za-z0-9._-]*))"
)


def _package(lines):
    """The project pip was building when it failed: the last one it named before the first failure (None: not named)."""
    name = None
    for line in lines:
        m = _NAMED.match(line)
        if m:
            name = m.group(1) or m.group(2) or m.group(3)
        if "subprocess-exited-with-error" in line or "fatal error:" in line or "Command errored out" in line:
            break
    return name


def diagnose(text):
    # type: (str) -> list
    """The lines to print for this pip output: the missing piece and its package, else the last error line."""
    lines = _lines(text)
    joined = "\n".join(lines)
    what = _package(lines)
    prefix = "building " + what + ": " if what else ""
    out = []
    for line in lines:
        m = _MISSING_HEADER.search(line)
        if m:
            header = m.group(1)
            package = HEADERS.get(header)
            if package is None and "/" in header:
                package = HEADERS.get(header.rsplit("/", 1)[-1])
            why = prefix + "the C header " + header + " is missing"
            found = why + (": install " + package if package else ": install the -dev package that ships it")
            if found not in out:
                out.append(found)
    if "pg_config executable not found" in joined or re.search(r"pg_config: (?:command )?not found", joined):
        out.append(prefix + "pg_config (PostgreSQL's client build settings) is missing: install libpq-dev")
    if "mysql_config not found" in joined or re.search(r"mysql_config: (?:command )?not found", joined):
        out.append(prefix + "mysql_config (MySQL's client build settings) is missing: install " + MYSQL)
    elif "Can not find valid pkg-config name" in joined or re.search(r"pkg-config --exists (?:mysqlclient|mariadb)", joined):
        out.append(prefix + "pkg-config finds no MySQL/MariaDB client library: install " + MYSQL)
    missing_build_req = _NO_DISTRIBUTION.search(joined)
    if missing_build_req and "install build dependencies did not run successfully" in joined:
        out.append(
            prefix + "its build requirement " + missing_build_req.group(1) + " is not among the files pip may install (--no-index): "
            "lock the build requirements (python -m generator lock-app writes requirements-build.lock.json) and fetch them with app --hermetic"
        )
    if _NO_COMPILER.search(joined):
        out.append(prefix + "no C compiler (gcc) is installed: install build-essential")
    if out:
        return out
    if _COMPILER_FAILED.search(joined):
        return [prefix + "the C compiler failed (see the first `error:` above it); build-essential and the -dev packages of its libraries are needed"]
    errors = [line.strip() for line in lines if _ERROR.match(line) and not any(n in line for n in _PIP_NOISE)]
    if errors:
        return [prefix + errors[-1]]
    return []


def main(argv):
    # type: (list) -> int
    if len(argv) != 2:
        sys.stderr.write("usage: python native_diagnose.py PIP_LOG\n")
        return 0
    try:
        with open(argv[1], "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:  # noqa: UP024 (Python 2: IOError is not an OSError)
        sys.stderr.write("native_diagnose: cannot read " + argv[1] + ": " + str(exc) + "\n")
        return 0
    for line in diagnose(text):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
