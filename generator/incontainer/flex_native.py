# ruff: noqa: UP010, UP024, UP031
"""Native libraries of an app's compiled extensions, run inside the images (Python 2.7 and 3.4+, stdlib only).

The build image carries the .debs of every shared library its -dev packages brought (`keep-debs`,
at build-image time). An app's build stage compiles into /env; `scan` runs ldd over every ELF file
there, maps each library outside /env to the package that owns it (dpkg's file lists), and writes
the .debs the final stage must install: the owning packages the runtime image lacks, with their
dependency closure. The final stage installs exactly those, then `check` proves every ELF file of
/env resolves all its libraries there, naming the library and its package when one does not.
"""

from __future__ import print_function

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys

SHARE = "/usr/share/flex-python"
RUNTIME_PACKAGES = SHARE + "/runtime-packages.txt"  # installed in the runtime image (recorded before the build image's packages)
DEBS = SHARE + "/debs"  # the kept .debs; index.txt: "package filename" lines
DPKG_INFO = "/var/lib/dpkg/info"
# the runtime's interpreter prefix (/opt/pythonX.Y), part of both images: /env's python is a venv (3) or a virtualenv (2) of it
INTERPRETER = os.path.realpath(getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", sys.prefix))
_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)(?:\s+\(0x[0-9a-f]+\))?\s*$")
# a shared library where the dynamic linker looks (not a compiler's plugin under /usr/lib/gcc/...)
_SONAME_FILE = re.compile(r"^(?:/usr)?/lib(?:/x86_64-linux-gnu)?/lib[^/]+\.so\.[0-9][^/]*$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_:%-]*$")


def run(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def fail(message):
    sys.stderr.write("ERROR: %s\n" % message)
    sys.exit(1)


def installed():
    """Installed package names (without :arch)."""
    code, out, err = run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n"])
    if code != 0:
        fail("dpkg-query failed: %s" % err.strip())
    return set(line.split("\t")[0] for line in out.splitlines() if "\t" in line and line.split("\t")[1][1:2] == "i")


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [line.strip() for line in fh if line.strip()]


def owners():
    """Library file path -> owning package, from dpkg's file lists (only paths that look like shared objects)."""
    out = {}
    for name in sorted(os.listdir(DPKG_INFO)):
        if not name.endswith(".list"):
            continue
        package = name[: -len(".list")].split(":")[0]
        with open(os.path.join(DPKG_INFO, name)) as fh:
            for line in fh:
                path = line.rstrip("\n")
                if ".so" in path:
                    out[path] = package
    return out


def owner_of(path, table):
    """The package owning `path`, looked up as written, resolved, and across the /usr merge."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.append(p[len("/usr") :])
        else:
            candidates.append("/usr" + p)
    for p in candidates:
        if p in table:
            return table[p]
    return None


def depends(package):
    """Package names of the Depends and Pre-Depends of an installed package (first installed alternative of each clause)."""
    code, out, _ = run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", package])
    if code != 0:
        return []
    names = []
    for clause in out.split(","):
        for alt in clause.split("|"):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name:
                names.append(name)
                break
    return names


def closure(roots, within):
    """Every package of `within` reachable from `roots` through Depends/Pre-Depends."""
    seen, todo = set(), [p for p in roots if p in within]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(d for d in depends(p) if d in within and d not in seen)
    return seen


def elf_files(top):
    out = []
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        out.append(path)
            except (IOError, OSError):
                continue
    return out


def ldd(path):
    """(resolved {soname: path}, [missing sonames]) of one ELF file; ({}, []) for a static one.

    A library a wheel bundles beside others (auditwheel's `<pkg>.libs/`) finds its siblings through
    the extension module's rpath, not its own: ldd on it alone says "not found" for them, so a
    missing name that is a file beside it counts as found there. Likewise libpython: an extension
    built against a shared interpreter may name it without an rpath, since the interpreter that
    imports it has it loaded already."""
    _, out, err = run(["ldd", path])
    found, missing = {}, []
    here = os.path.dirname(path)
    for line in (out + err).splitlines():
        if "not found" in line and "=>" in line:
            soname = line.split("=>")[0].strip()
            for where in (here, os.path.join(INTERPRETER, "lib")):
                if os.path.exists(os.path.join(where, soname)):
                    found[soname] = os.path.join(where, soname)
                    break
            else:
                missing.append(soname)
            continue
        m = _LDD_LINE.match(line)
        if m and m.group(2).startswith("/"):
            found[m.group(1)] = m.group(2)
    return found, missing


def keep_debs(deb_dir, out_dir):
    """Build image: keep the .debs of the shared-library packages installed here (and their dependencies) that the runtime image lacks."""
    runtime = set(read_lines(RUNTIME_PACKAGES))
    new = installed() - runtime
    by_package = {}
    for name in sorted(os.listdir(deb_dir)):
        if name.endswith(".deb"):
            code, out, err = run(["dpkg-deb", "--field", os.path.join(deb_dir, name), "Package"])
            if code != 0:
                fail("%s: %s" % (name, err.strip()))
            by_package[out.strip()] = name
    libs = set()
    for package in sorted(new):
        if package.endswith("-dev"):
            continue
        for path in read_lines(os.path.join(DPKG_INFO, package + ".list")) + read_lines(os.path.join(DPKG_INFO, package + ":amd64.list")):
            if _SONAME_FILE.search(path):
                libs.add(package)
                break
    keep = sorted(p for p in closure(libs, set(p for p in new if not p.endswith(("-dev", "-dev-bin")))) if p in by_package)
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    with open(os.path.join(out_dir, "index.txt"), "w") as fh:
        for package in keep:
            shutil.copyfile(os.path.join(deb_dir, by_package[package]), os.path.join(out_dir, by_package[package]))
            fh.write("%s %s\n" % (package, by_package[package]))
    print("kept %d library packages' .debs for apps' final stages: %s" % (len(keep), " ".join(keep)))


def scan(env, out_dir, app_packages_file):
    """Build stage: the packages the final stage must install for the ELF files of `env` to load."""
    runtime = set(read_lines(RUNTIME_PACKAGES))
    app_packages = set(read_lines(app_packages_file))
    index = dict(line.split(" ", 1) for line in read_lines(os.path.join(DEBS, "index.txt")))
    table = owners()
    need, report, problems = set(), [], []
    files = elf_files(env)
    for path in files:
        found, missing = ldd(path)
        for soname in missing:
            problems.append("%s needs %s, which is on no library path of the build image" % (path, soname))
        for soname, lib in sorted(found.items()):
            if lib.startswith(env.rstrip("/") + "/") or lib.startswith(INTERPRETER + "/"):
                continue  # shipped inside the wheel (auditwheel's .libs), the app's own, or the interpreter's (libpython)
            package = owner_of(lib, table)
            if package is None:
                problems.append("%s needs %s (%s), which no installed package owns" % (path, soname, lib))
            elif package in runtime or package in app_packages:
                continue
            elif package in index:
                need.add(package)
                report.append("%s %s %s" % (soname, package, path))
            else:
                problems.append(
                    "%s needs %s from package %s, which the runtime image lacks and the build image keeps no .deb of; "
                    "add %s to apt-packages.txt beside app.yaml" % (path, soname, package, package)
                )
    if problems:
        fail("\n  ".join(["native libraries:"] + problems))
    install = sorted(closure(need, set(index)) - runtime)
    for package in install:
        if not _SAFE.match(index[package]):
            fail("unexpected .deb file name %r" % index[package])
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    with open(os.path.join(out_dir, "debs.txt"), "w") as fh:
        fh.write("".join("%s\n" % index[p] for p in install))
    with open(os.path.join(out_dir, "packages.txt"), "w") as fh:
        fh.write("".join("%s\n" % p for p in install))
    with open(os.path.join(out_dir, "report.txt"), "w") as fh:
        fh.write("".join("%s\n" % line for line in sorted(set(report))))
    print(
        "native libraries: %d ELF files under %s; the final image installs %d package(s) for them: %s"
        % (len(files), env, len(install), " ".join(install) or "none")
    )


def check(env, report_file):
    """Final stage: every ELF file of `env` resolves every library; else name the library and its package."""
    packages = {}
    for line in read_lines(report_file):
        parts = line.split(" ")
        packages[parts[0]] = parts[1]
    problems = []
    files = elf_files(env)
    for path in files:
        _, missing = ldd(path)
        for soname in missing:
            problems.append("%s: %s not found (package %s)" % (path, soname, packages.get(soname, "unknown")))
    if problems:
        fail("\n  ".join(["libraries missing in the final image:"] + problems))
    print("native libraries: all %d ELF files under %s resolve their libraries" % (len(files), env))


def _entries(top):
    """relative path -> ("f", sha256) of each file, ("l", target) of each symlink under `top`."""
    out = {}
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, top)
            if os.path.islink(path):
                out[rel] = ("l", os.readlink(path))
            elif os.path.isfile(path):
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 16), b""):
                        digest.update(block)
                out[rel] = ("f", digest.hexdigest())
    return out


def manifest(env, out_file):
    """Build stage, before pip: what /env holds (the runtime image's), to tell what the app's install changed."""
    with open(out_file, "w") as fh:
        for rel, (kind, value) in sorted(_entries(env).items()):
            fh.write("%s %s %s\n" % (kind, value, rel))


def delta(env, manifest_file, out_dir):
    """Build stage, after pip: only the files of /env the install added or changed go to `out_dir` (the final
    stage copies that over the runtime image's /env, not a second copy of all of it); what it removed is
    listed in `out_dir`.deleted for the final stage to remove."""
    before = {}
    for line in read_lines(manifest_file):
        kind, value, rel = line.split(" ", 2)
        before[rel] = (kind, value)
    now = _entries(env)
    changed = sorted(rel for rel, entry in now.items() if before.get(rel) != entry)
    removed = sorted(rel for rel in before if rel not in now)
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    for rel in changed:
        src, dst = os.path.join(env, rel), os.path.join(out_dir, rel)
        if not os.path.isdir(os.path.dirname(dst)):
            os.makedirs(os.path.dirname(dst))
        if now[rel][0] == "l":
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
            os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))
    with open(out_dir.rstrip("/") + ".deleted", "w") as fh:
        fh.write("".join("%s\n" % os.path.join(env, rel) for rel in removed))
    print("%s: %d files added or changed, %d removed by the install" % (env, len(changed), len(removed)))


def remove(listing):
    """Final stage: remove what the install removed from /env (listed by `delta`), before anything runs there."""
    paths = read_lines(listing)
    for path in paths:
        if not path.startswith("/env/") or "/../" in path:
            fail("refusing to remove %r: not a path under /env" % path)
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    print("/env: %d files the install removed are removed" % len(paths))


def diagnose(log):
    """Build stage, after pip failed: one line naming the missing piece and its package (native_diagnose.py beside this file)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import native_diagnose

    native_diagnose.main(["native_diagnose.py", log])


def main(argv):
    commands = {
        "keep-debs": (keep_debs, 2),
        "manifest": (manifest, 2),
        "delta": (delta, 3),
        "scan": (scan, 3),
        "check": (check, 2),
        "remove": (remove, 1),
        "diagnose": (diagnose, 1),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.stderr.write(
            "usage: flex_native.py keep-debs DEB_DIR OUT_DIR | manifest ENV OUT | delta ENV MANIFEST OUT_DIR"
            " | scan ENV OUT_DIR APP_PACKAGES | check ENV REPORT | remove LIST | diagnose PIP_LOG\n"
        )
        return 2
    commands[argv[1]][0](*argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
