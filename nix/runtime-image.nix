# One runtime entry of lockfiles/runtimes.json -> one image, streamed by
# dockerTools.streamLayeredImage (`nix build .#<id>` gives a script; `./result | docker load`).
#
# Nothing here is specific to one runtime: flake.nix maps this function over
# every entry of the generated JSON, once per system. Uses only builtins (no
# nixpkgs lib), so the test stand-ins under tests/nix/ need to provide only the
# functions below.
#
# A runtime that cannot be built (its base has no known pullImage hash for this
# architecture, the pinned nixpkgs-python lacks its CPython release, or the
# pinned nixpkgs lacks what nixpkgs-python needs for it) still evaluates: it is a derivation that fails when BUILT, printing
# why and what to do (so `nix flake check` and `nix flake show` pass), with the
# image it would have been in passthru.image and the reasons in
# passthru.unbuildable. flake.nix keeps such runtimes out of hydraJobs/checks.
{ dockerTools, fetchurl, runCommand, runCommandCC, pythons
, created ? "1970-01-01T00:00:01Z"
  # the image's architecture, as registries name it (amd64, arm64)
, arch ? "amd64"
  # { path; rev; } of the nixpkgs nixpkgs-python builds its CPythons from
, nixpkgs ? null
}:

entry:

let
  id = entry.id;
  base = entry.base;
  py = entry.python;

  fail = msg: throw "runtime ${id}: ${msg}";

  # "REPO/NAME:TAG" -> [ "REPO/NAME" "TAG" ]  (a registry port is not a tag)
  imageRef =
    let m = builtins.match "(.+):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})" entry.image;
    in if m == null then fail "image '${entry.image}' has no tag" else m;

  # ---- the interpreter: CPython from cachix/nixpkgs-python, by exact release ----
  # A release the pinned nixpkgs-python does not have yet (the refresh pinned a new patch release
  # before nixpkgs-python added it): the runtime refuses when built, like a missing base hash.
  providesRelease = pythons ? ${py.version};
  missingRelease = ''
    runtime ${id}: CPython ${py.version} is not provided by the pinned nixpkgs-python
    (packages.<system>."${py.version}"), so this image cannot be built with Nix yet (the Dockerfile
    path builds it). Where GitHub is reachable, move the flake's pins to a nixpkgs-python that has it:
      python -m generator refresh --only nix'';
  python0 = pythons.${py.version} or (throw "runtime ${id}: CPython ${py.version} is not provided by the pinned nixpkgs-python");
  python =
    if (python0.version or py.version) != py.version
    then fail "nixpkgs-python's packages.\"${py.version}\" is CPython ${python0.version}"
    else python0;

  # nixpkgs-python builds each CPython from nixpkgs' own expressions (2.x from
  # cpython/2.7/, which nixpkgs master dropped on 2026-05-03). Where the pinned
  # nixpkgs lacks one, evaluating the interpreter would stop at a missing path;
  # this names the version and the revision instead.
  nixpkgsRev = if nixpkgs == null then "unknown" else nixpkgs.rev;
  cpythonFiles = [
    "pkgs/development/interpreters/python/cpython/${if major == "2" then "2.7/" else ""}default.nix"
    "pkgs/development/interpreters/python/passthrufun.nix"
  ];
  missingCpythonFiles =
    if nixpkgs == null then [ ]
    else builtins.filter (f: !(builtins.pathExists "${nixpkgs.path}/${f}")) cpythonFiles;
  missingCpython = ''
    runtime ${id}: CPython ${py.version} cannot be built with the pinned nixpkgs (rev ${nixpkgsRev}):
    nixpkgs-python builds it from nixpkgs' ${builtins.concatStringsSep " and " missingCpythonFiles},
    which that nixpkgs does not have${if major == "2" then " (nixpkgs master dropped CPython 2.7 on 2026-05-03)" else ""}.
    Pin a nixpkgs that has it: the one nixpkgs-python's own flake.lock names (see README, "Nix").'';

  # Where the interpreter appears in the image (the same path the Dockerfile
  # build uses), e.g. "/opt/python3.12" -> "opt/python3.12" inside the layer.
  prefix = py.prefix;
  prefixInLayer =
    let m = builtins.match "/(.+[^/])" prefix;
    in if m == null then fail "python.prefix '${prefix}' is not an absolute path" else builtins.head m;
  major = builtins.head (builtins.splitVersion py.minor);

  # ---- base image -------------------------------------------------------
  # The pullImage hash covers skopeo's docker-archive, which records
  # finalImageName:finalImageTag; it must be the pair it was computed with
  # (nix-prefetch-docker's --final-image-name/--final-image-tag).
  shortName =
    let m = builtins.match "(docker\\.io/)?(library/)?(.+)" base.name;
    in builtins.elemAt m 2;
  finalImageName = base.nix_final_image_name or shortName;
  finalImageTag = base.nix_final_image_tag or base.tag;

  # This architecture's pins: base.platforms.<arch> (manifest digest, pullImage hash).
  platform = base.platforms.${arch} or (fail "base has no ${arch} platform in lockfiles/runtimes.json");
  # The per-architecture manifest where the lock knows it, else the index digest
  # (pullImage then picks `arch` from it).
  imageDigest = if (platform.manifest_digest or null) != null then platform.manifest_digest else base.digest;
  nixSha256 = platform.nix_sha256 or null;

  missingHash = ''
    runtime ${id}: the dockerTools.pullImage hash is unknown for base image
      ${base.reference} (${arch}: ${imageDigest}),
    so this image cannot be built with Nix. No hash is guessed. Where the registry is reachable run
      nix-prefetch-docker --image-name ${base.name} --image-digest ${imageDigest} \
        --final-image-name ${finalImageName} --final-image-tag ${finalImageTag} --os linux --arch ${arch}
    and put the printed hash in lockfiles/schedule.lock.json
    (base_images.${entry.operating_system}.platforms.${arch}.nix_sha256), then: python -m generator generate
    (or run `python -m generator refresh ${entry.operating_system}` there: it does both)'';

  unbuildable =
    (if nixSha256 == null then [ missingHash ] else [ ])
    ++ (if !providesRelease then [ missingRelease ] else [ ])
    ++ (if providesRelease && missingCpythonFiles != [ ] then [ missingCpython ] else [ ]);

  # SRI ("sha256-...") goes to `hash`; nix-prefetch-docker's base32 (or hex) to `sha256`.
  hashArg = h:
    if builtins.substring 0 7 h == "sha256-" then { hash = h; } else { sha256 = h; };

  # A derivation that fails when built, printing MESSAGES (not an evaluation
  # error: `nix flake check` and `nix flake show` still see the package).
  refuse = name: messages: passthru: runCommand name { inherit passthru; } ''
    cat >&2 <<'EOF'
    ${builtins.concatStringsSep "\n" messages}
    EOF
    exit 1
  '';

  baseImage =
    if nixSha256 == null then refuse "docker-image-${finalImageName}-${finalImageTag}-${arch}-unknown-hash.tar" [ missingHash ] { }
    else dockerTools.pullImage ({
      imageName = base.name;
      inherit imageDigest finalImageName finalImageTag arch;
      os = "linux";
    } // hashArg nixSha256);

  # ---- /env: the environment first on PATH, with the runtime's pinned tools ----
  #
  # Python 3: a venv, as `python -m venv` makes it: bin/python is a symlink to
  # the interpreter and pyvenv.cfg makes site.py set sys.prefix to /env.
  #
  # Python 2.7 has no venv and ignores pyvenv.cfg; it also resolves the symlink
  # of its executable before it looks for its prefix, so a symlinked
  # /env/bin/python would run with the interpreter's own prefix and never see
  # /env's site-packages. Instead /env is made a prefix of its own, the way 2.7
  # itself finds one (getpath.c): bin/python2.7 is a COPY of the interpreter's
  # executable (it loads libpython from the store path through its rpath),
  # /env/lib/python2.7/os.py and lib-dynload (2.7's landmarks) and the rest of
  # the standard library are symlinks into the interpreter, and site-packages is
  # a real directory. So sys.prefix == sys.exec_prefix == "/env", site.py adds
  # /env/lib/python2.7/site-packages, and `pip install` installs into /env, with
  # no PYTHONPATH, .pth or wrapper script. What differs from the Dockerfile path
  # (virtualenv): there is no sys.real_prefix and no activate scripts.
  envLayout =
    if major == "3" then "venv"
    else if major == "2" then "prefix"
    else fail "python.minor '${py.minor}': only CPython 2 and 3 are supported";

  tools = entry.tools or [ ];
  # A tool's file name becomes a path and a shell word below: the same rule the generator checks
  # (model.FileName), and quoted anyway, as nixpkgs' lib.escapeShellArg does.
  shellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
  safeFileName = f:
    if builtins.match "[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\\.(whl|tar\\.gz|zip|tar\\.bz2)" f != null then f
    else fail "tool file name '${f}' is not a plain wheel or sdist file name";
  toolFiles = map
    (t: {
      inherit (t) name version sha256;
      filename = safeFileName t.filename;
      src = fetchurl { inherit (t) url sha256; name = safeFileName t.filename; };
    })
    tools;
  pipTool = builtins.filter (t: t.name == "pip") toolFiles;
  isWheel = t: builtins.match ".*\\.whl" t.filename != null;
  # Wheels first; then any sdist (python2's scandir), built against /env's
  # setuptools, which the first pass installed, with a C compiler at hand and
  # no debug info (it would record pip's randomly named build directory).
  passes = builtins.filter (p: p.tools != [ ]) [
    { tools = builtins.filter isWheel toolFiles; flags = ""; env = ""; }
    { tools = builtins.filter (t: !isWheel t) toolFiles; flags = "--no-build-isolation"; env = "CFLAGS=-g0 "; }
  ];
  hasSdist = builtins.any (t: !isWheel t) toolFiles;

  # Bytecode for /env's tools, so a cold start does not compile them (nixpkgs'
  # CPython ships its standard library's). Hash-based and unchecked (PEP 552,
  # 3.7+): valid whatever the files' mtimes become in the image's layers, and
  # nothing time-dependent is recorded; the recorded source path is the image's
  # /env/..., not this build's (-s/-p from 3.9; -d, the same mapping for one
  # directory, on 3.7 and 3.8). CPython 2.7 and 3.4-3.6 only have timestamp
  # .pyc files, whose recorded mtime would not match the layer's, so /env gets
  # none there (as before: the interpreter writes them at run time, as uid 1000).
  sitePackages = "lib/python${py.minor}/site-packages";
  bytecode = if builtins.compareVersions py.minor "3.7" >= 0 then "unchecked-hash" else null;
  compileArgs =
    if builtins.compareVersions py.minor "3.9" >= 0 then ''-s "$envdir" -p /env''
    else "-d /env/${sitePackages}";
  compileBytecode =
    if bytecode == null then "# no bytecode for CPython ${py.minor} (timestamp .pyc only)"
    else ''"$envdir/bin/python" -m compileall -q --invalidation-mode unchecked-hash ${compileArgs} "$envdir/${sitePackages}"'';

  # Every locked tool, by exact version and hash, offline, from the fetched files
  # (fetchurl has checked the same sha256 already); like the Dockerfile path.
  requirements = ts: builtins.concatStringsSep "\n"
    (map (t: "${t.name}==${t.version} --hash=sha256:${t.sha256}") ts);
  pipInstall = i: pass: ''
    cat > requirements-${toString i}.txt <<'EOF'
    ${requirements pass.tools}
    EOF
    ${pass.env}"$envdir/bin/python" ${shellArg "wheels/${(builtins.head pipTool).filename}/pip"} install \
      --no-index --find-links "$PWD/wheels" --require-hashes --no-deps --no-cache-dir \
      --disable-pip-version-check --no-warn-script-location --no-compile ${pass.flags} \
      -r requirements-${toString i}.txt
  '';

  installTools =
    if toolFiles == [ ] then ""
    else if pipTool == [ ] then fail "tools are listed but pip is not among them (pip installs them)"
    else if !(isWheel (builtins.head pipTool)) then fail "pip must be locked as a wheel (it runs from its wheel)"
    else ''
      mkdir wheels
      ${builtins.concatStringsSep "\n" (map (t: "ln -s ${t.src} ${shellArg "wheels/${t.filename}"}") toolFiles)}
      # no bytecode as a side effect (it would name this build's path of /env);
      # compileBytecode writes it below, reproducibly, where the Python can
      export HOME="$TMPDIR" PIP_CONFIG_FILE=/dev/null PYTHONDONTWRITEBYTECODE=1
      # pip runs from its own wheel, with /env's python, so it installs into /env
      ${builtins.concatStringsSep "\n" (builtins.genList (i: pipInstall i (builtins.elemAt passes i)) (builtins.length passes))}
      "$envdir/bin/python" -m pip check
      ${compileBytecode}
      # scripts: from the build's path of /env to the image's
      for f in "$envdir"/bin/*; do
        if [ -f "$f" ] && [ ! -L "$f" ] && [ "$(head -c 2 "$f")" = "#!" ]; then
          sed -i "1s|^#!$envdir/bin/|#!/env/bin/|" "$f"
        fi
      done
    '';

  # Build time: /env points at the interpreter's store path, so pip can run in it.
  makeEnv = {
    venv = ''
      ln -s lib "$envdir/lib64"
      writeCfg() {
        printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' "$1" '${py.version}' > "$envdir/pyvenv.cfg"
      }
      writeCfg '${python}/bin'
      ln -s '${python}/bin/python${py.minor}' "$envdir/bin/python"
      ln -s python "$envdir/bin/python${major}"
      ln -s python "$envdir/bin/python${py.minor}"
    '';
    prefix = ''
      cp '${python}/bin/python${py.minor}' "$envdir/bin/python${py.minor}"
      chmod u+w "$envdir/bin/python${py.minor}"
      ln -s python${py.minor} "$envdir/bin/python${major}"
      ln -s python${py.minor} "$envdir/bin/python"
      for landmark in os.py lib-dynload; do
        if [ ! -e "${python}/lib/python${py.minor}/$landmark" ]; then
          echo "${python} has no lib/python${py.minor}/$landmark: not a CPython prefix" >&2; exit 1
        fi
      done
      for f in '${python}/lib/python${py.minor}'/*; do
        [ "''${f##*/}" = site-packages ] || ln -s "$f" "$envdir/lib/python${py.minor}/"
      done
      ln -s '${python}/include' "$envdir/include"
    '';
  }.${envLayout};

  # Then the links move from the store path to the interpreter's path in the image.
  retargetEnv = {
    venv = ''
      writeCfg '${prefix}/bin'
      ln -sfn '${prefix}/bin/python${py.minor}' "$envdir/bin/python"
    '';
    prefix = ''
      for f in "$envdir/lib/python${py.minor}"/*; do
        if [ -L "$f" ]; then ln -sfn "${prefix}/lib/python${py.minor}/''${f##*/}" "$f"; fi
      done
      ln -sfn '${prefix}/include' "$envdir/include"
    '';
  }.${envLayout};

  env = (if hasSdist then runCommandCC else runCommand) "${id}-env" { passthru = { layout = envLayout; inherit bytecode; }; } ''
    set -eu
    envdir="$out/env"
    mkdir -p "$envdir/bin" "$envdir/lib/python${py.minor}/site-packages"
    ${makeEnv}
    ${installTools}
    ${retargetEnv}
    # nothing in /env (bytecode included) may still name the build's path of it
    if grep -rl -- "$out" "$envdir"; then echo "the files above name $out" >&2; exit 1; fi
  '';

  # ---- image ownership from config.User ("uid" or "uid:gid", numeric) ---------
  user = entry.config.User or null;
  userIds = if user == null then null else builtins.match "([0-9]+)(:([0-9]+))?" user;
  chown =
    if user == null then ""
    else if userIds == null then fail "config.User '${user}' must be numeric (uid or uid:gid) for the Nix image"
    else
      let
        uid = builtins.elemAt userIds 0;
        gid = if builtins.elemAt userIds 2 == null then uid else builtins.elemAt userIds 2;
      in
      "chown -R -h ${uid}:${gid} env app";
  maxLayers = 100; # nixpkgs' default, base image's layers included

  # What the image check (generator/images/imagecheck.py, flake.nix's checks) expects
  # to find in the streamed image.
  expect = {
    repo_tag = entry.image;
    architecture = arch;
    config = entry.config;
    paths = [ "${prefix}/bin/python" "/env/bin/python" ];
    bytecode = if bytecode == null || tools == [ ] then null else { dir = "/env/${sitePackages}"; mode = bytecode; };
    max_layers = maxLayers;
  };

  passthru = {
    runtimeId = id;
    pythonVersion = py.version;
    baseReference = base.reference;
    interpreter = python;
    pythonEnv = env;
    inherit envLayout expect;
  };

  image = dockerTools.streamLayeredImage {
    name = builtins.elemAt imageRef 0;
    tag = builtins.elemAt imageRef 1;
    fromImage = baseImage;
    architecture = arch;
    inherit maxLayers;
    # Nothing is merged into / (that would put Nix's bin/ lib/ over Ubuntu's
    # /bin -> usr/bin); the layer is built by extraCommands instead. The
    # interpreter reaches the image's store layers through the symlink's reference
    # (streamLayeredImage's closure roots include the customisation layer).
    contents = [ ];
    extraCommands = ''
      mkdir -p ${builtins.dirOf prefixInLayer} app
      ln -s ${python} ${prefixInLayer}
      cp -r ${env}/env env
      chmod -R u+w env
    '';
    fakeRootCommands = chown;
    config = entry.config;
    inherit created passthru;
  };
in
if unbuildable == [ ] then image
else refuse "stream-${id}" unbuildable (passthru // { inherit image unbuildable providesRelease; })
