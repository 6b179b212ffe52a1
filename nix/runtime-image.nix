# One runtime entry of lockfiles/runtimes.json -> one image, streamed by
# dockerTools.streamLayeredImage (`nix build .#<id>` gives a script; `./result | docker load`).
#
# Nothing here is specific to one runtime: flake.nix maps this function over
# every entry of the generated JSON. Uses only builtins (no nixpkgs lib), so the
# test stand-ins under tests/nix/ need to provide only the functions below.
{ dockerTools, fetchurl, runCommand, runCommandCC, pythons, created ? "1970-01-01T00:00:01Z" }:

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
  python0 = pythons.${py.version} or (fail ''
    CPython ${py.version} is not provided by the pinned nixpkgs-python
    (packages.<system>."${py.version}"); pick a release it has, or move its pin (nix flake update).'');
  python =
    if (python0.version or py.version) != py.version
    then fail "nixpkgs-python's packages.\"${py.version}\" is CPython ${python0.version}"
    else python0;

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

  missingHash = ''
    runtime ${id}: the dockerTools.pullImage hash is unknown for base image
      ${base.reference}
    (base.nix_sha256 is null in lockfiles/runtimes.json for digest ${base.digest}),
    so this image cannot be built with Nix. No hash is guessed. To fill it, where the
    registry is reachable run:
      nix-prefetch-docker --image-name ${base.name} --image-digest ${base.digest} \
        --final-image-name ${finalImageName} --final-image-tag ${finalImageTag} --os linux --arch amd64
    put the printed hash in schedule.yaml (nix_sha256 of the ${entry.operating_system} system),
    then regenerate with: python -m generator generate'';

  # SRI ("sha256-...") goes to `hash`; nix-prefetch-docker's base32 (or hex) to `sha256`.
  hashArg = h:
    if builtins.substring 0 7 h == "sha256-" then { hash = h; } else { sha256 = h; };

  baseImage =
    if base.nix_sha256 == null then throw missingHash
    else dockerTools.pullImage ({
      imageName = base.name;
      imageDigest = base.digest;
      inherit finalImageName finalImageTag;
      os = "linux";
      arch = "amd64";
    } // hashArg base.nix_sha256);

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
  toolFiles = map
    (t: {
      inherit (t) name version filename sha256;
      src = fetchurl { inherit (t) url sha256; name = t.filename; };
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

  # Every locked tool, by exact version and hash, offline, from the fetched files
  # (fetchurl has checked the same sha256 already); like the Dockerfile path.
  requirements = ts: builtins.concatStringsSep "\n"
    (map (t: "${t.name}==${t.version} --hash=sha256:${t.sha256}") ts);
  pipInstall = i: pass: ''
    cat > requirements-${toString i}.txt <<'EOF'
    ${requirements pass.tools}
    EOF
    ${pass.env}"$envdir/bin/python" "wheels/${(builtins.head pipTool).filename}/pip" install \
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
      ${builtins.concatStringsSep "\n" (map (t: "ln -s ${t.src} wheels/${t.filename}") toolFiles)}
      # no bytecode: a .pyc written here would name this build's path of /env
      export HOME="$TMPDIR" PIP_CONFIG_FILE=/dev/null PYTHONDONTWRITEBYTECODE=1
      # pip runs from its own wheel, with /env's python, so it installs into /env
      ${builtins.concatStringsSep "\n" (builtins.genList (i: pipInstall i (builtins.elemAt passes i)) (builtins.length passes))}
      "$envdir/bin/python" -m pip check
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

  env = (if hasSdist then runCommandCC else runCommand) "${id}-env" { passthru.layout = envLayout; } ''
    set -eu
    envdir="$out/env"
    mkdir -p "$envdir/bin" "$envdir/lib/python${py.minor}/site-packages"
    ${makeEnv}
    ${installTools}
    ${retargetEnv}
    # nothing in /env may still name the build's path of it
    if grep -rIl -- "$out" "$envdir"; then echo "the files above name $out" >&2; exit 1; fi
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
in
dockerTools.streamLayeredImage {
  name = builtins.elemAt imageRef 0;
  tag = builtins.elemAt imageRef 1;
  fromImage = baseImage;
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
  inherit created;
  passthru = {
    runtimeId = id;
    pythonVersion = py.version;
    baseReference = base.reference;
    interpreter = python;
    pythonEnv = env;
    inherit envLayout;
  };
}
