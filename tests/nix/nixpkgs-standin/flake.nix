# Test stand-in for nixpkgs (used only through
#   --override-input nixpkgs path:tests/nix/nixpkgs-standin).
#
# It implements ONLY what flake.nix and nix/runtime-image.nix call:
#   legacyPackages.{x86_64-linux,aarch64-linux}.{dockerTools.pullImage,
#     dockerTools.streamLayeredImage, fetchurl, runCommand, runCommandCC, python3}
# and the files of nixpkgs that cachix/nixpkgs-python builds CPython from
# (pkgs/development/interpreters/python/…, empty here), so a test can take one
# away as nixpkgs master did with cpython/2.7.
# with the argument sets of the real functions in nixpkgs (nixos-25.11 era,
# pkgs/build-support/docker/default.nix and lib/fetchers.nix), so that a call
# the real nixpkgs would reject is rejected here too:
#   * streamLayeredImage is a function with a fixed formal argument set: an
#     unknown argument is an evaluation error, as in nixpkgs.
#   * pullImage is wrapped like lib.fetchers.withNormalizedHash: it takes
#     `hash` (SRI) or `sha256`; neither -> "fetcher called without `hash`",
#     both -> "mutually-incompatible arguments"; any other unknown argument is
#     rejected by the inner function's fixed formals.
# The results are real derivations that build with nothing but the Debian root
# the tests run Nix in (tests/nix/run-nix.sh: sandbox off, its /bin/bash, tar and
# /usr/bin/python3). Nothing is downloaded: pullImage and fetchurl are real
# fixed-output derivations whose builders cannot fetch (Nix validates the hash
# format when the .drv is instantiated; a test that builds puts the file in the
# store first, as a prefetch would). runCommand runs its buildCommand with bash;
# streamLayeredImage makes a real stream script that writes a docker-archive
# (stream-layered-image.py: base layers, one layer per store path of the
# closure, the customisation layer; the layout of nixpkgs' script, simplified).
# Each result carries the arguments it received (imageArgs / pullImageArgs /
# fetchurlArgs / runCommandArgs) so tests can `nix eval --json` them.
{
  description = "Stand-in for the few nixpkgs functions the runtime-image flake calls (tests only)";

  outputs = { self }:
    let
      forSystem = system:
    let
      # A real derivation running SCRIPT with bash. `env` values must be strings,
      # paths, derivations, lists of those, booleans, ints or null.
      mkScript = name: env: script:
        derivation ({
          inherit name system;
          builder = "/bin/bash";
          args = [ "-euo" "pipefail" "-c" script ];
          PATH = "/usr/bin:/bin";
        } // env);
      mkTrivial = name: env: mkScript name env "echo nixpkgs-standin > $out";

      # --- lib.fetchers.normalizeHash / withNormalizedHash (hashTypes = [ "sha256" ]) ---
      hashNames = [ "hash" "sha256" ];
      normalizeHash = required: args:
        if args ? outputHash then args
        else
          let
            given = builtins.filter (n: args ? ${n}) hashNames;
            h =
              if given == [ ] then
                (if required then throw "fetcher called without `hash`" else null)
              else if builtins.length given > 1 then
                throw "fetcher called with mutually-incompatible arguments: ${builtins.concatStringsSep ", " given}"
              else { name = builtins.head given; value = args.${builtins.head given}; };
          in
          removeAttrs args hashNames
          // (if h == null then { } else {
            outputHashAlgo = if h.name == "hash" then null else h.name;
            outputHash =
              if h.value == "" then
                (if h.name == "hash" then "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" else "0000000000000000000000000000000000000000000000000000")
              else h.value;
          });

      fixName = name: builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] name;

      # --- dockerTools.pullImage ---
      pullImageInner =
        { imageName
        , imageDigest
        , outputHash
        , outputHashAlgo
        , os ? "linux"
        , arch ? "amd64"
        , finalImageName ? imageName
        , finalImageTag ? "latest"
        , tlsVerify ? true
        , name ? fixName "docker-image-${finalImageName}-${finalImageTag}.tar"
        }@inner:
        assert builtins.isString imageName && builtins.isString imageDigest;
        assert builtins.match "sha256:[0-9a-f]{64}" imageDigest != null
          || throw "pullImage stand-in: imageDigest '${imageDigest}' is not sha256:<64 hex>";
        (derivation {
          inherit name system imageDigest outputHash;
          # null is how nixpkgs passes "algorithm taken from the SRI hash"
          outputHashAlgo = if outputHashAlgo == null then "" else outputHashAlgo;
          outputHashMode = "flat";
          imageName = finalImageName;
          imageTag = finalImageTag;
          sourceURL = "docker://${imageName}@${imageDigest}";
          destNameTag = "${finalImageName}:${finalImageTag}";
          builder = "/bin/sh";
          args = [ "-c" "echo pullImage stand-in cannot download >&2; exit 1" ];
        }) // {
          pullImageArgs = inner;
        };

      pullImage = args: pullImageInner (normalizeHash true args) // {
        # the arguments exactly as the caller passed them (hash or sha256 included)
        callerArgs = args;
      };

      # --- python3: the Debian root's own interpreter (impure; sandbox is off) ---
      python3 = mkScript "python3-standin" { } ''
        mkdir -p $out/bin
        ln -s /usr/bin/python3 $out/bin/python3
      '';

      # --- dockerTools.streamLayeredImage (argument set of nixpkgs' streamLayeredImage) ---
      streamLayeredImage =
        { name
        , tag ? null
        , fromImage ? null
        , contents ? [ ]
        , config ? { }
        , architecture ? "amd64"
        , created ? "1970-01-01T00:00:01Z"
        , mtime ? "1970-01-01T00:00:01Z"
        , uid ? 0
        , gid ? 0
        , uname ? "root"
        , gname ? "root"
        , maxLayers ? 100
        , extraCommands ? ""
        , fakeRootCommands ? ""
        , enableFakechroot ? false
        , includeStorePaths ? true
        , includeNixDB ? false
        , passthru ? { }
        , meta ? { }
        , layeringPipeline ? null
        , debug ? false
        }@args:
        assert (layeringPipeline == null -> maxLayers > 1)
          || throw "the maxLayers argument of dockerTools.buildLayeredImage function must be greather than 1 (current value: ${toString maxLayers})";
        let
          baseName = baseNameOf name;
          # like nixpkgs: the customisation layer runs extraCommands, then
          # fakeRootCommands, and is tarred with fixed mtimes; its references
          # (e.g. a symlink into the store) are the closure the image carries.
          # nixpkgs runs fakeRootCommands under fakeroot; here `chown` is a
          # shell function that records what the tarball must say (the only
          # command the flake's fakeRootCommands use: chown -R -h UID:GID PATH…).
          customisationLayer = mkScript "${baseName}-customisation-layer"
            { inherit extraCommands fakeRootCommands; } ''
            mkdir -p $out layer
            owners="$NIX_BUILD_TOP/owners"
            touch "$owners"
            chown() { printf '%s\0' "$@" >> "$owners"; printf '\n' >> "$owners"; }
            (cd layer && eval "$extraCommands" && eval "$fakeRootCommands")
            ${python3}/bin/python3 ${./stream-layered-image.py} layer layer "$owners" > $out/layer.tar
          '';
          # like nixpkgs: the config is written to a JSON file, and fromImage is
          # an input of the image's conf derivation, so instantiating the image
          # forces fromImage (and any error inside it).
          conf = mkScript "${baseName}-conf.json" {
            baseJson = builtins.toJSON {
              inherit config architecture created maxLayers;
              os = "linux";
              repoTag = "${name}:${if tag == null then "latest" else tag}";
              customisationLayer = "${customisationLayer}/layer.tar";
              fromImage = if fromImage == null then null else "${fromImage}";
            };
            contents = if builtins.isList contents then contents else [ contents ];
            inherit mtime;
            imageName = name;
            imageTag = if tag == null then "" else tag;
            exportReferencesGraph = [ "closure" customisationLayer ];
          } ''
            ${python3}/bin/python3 ${./stream-layered-image.py} conf closure "${customisationLayer}" > $out
          '';
          result = mkScript "stream-${baseName}" { inherit conf; } ''
            ${python3}/bin/python3 ${./stream-layered-image.py} script ${python3}/bin/python3 ${./stream-layered-image.py} $conf > $out
            chmod +x $out
          '';
        in
        result // passthru // {
          inherit conf meta;
          imageName = name;
          imageTag = if tag == null then "<output hash>" else tag;
          isExe = true;
          # what the caller passed (defaults not filled in)
          imageArgs = args;
        };

      # --- fetchurl (the subset of its arguments this project may use; the real
      # fetchurl accepts more, so this stand-in is stricter, never looser) ---
      fetchurl =
        { url ? ""
        , urls ? [ ]
        , name ? null
        , hash ? ""
        , sha256 ? ""
        , sha512 ? ""
        , executable ? false
        , recursiveHash ? false
        , postFetch ? ""
        , meta ? { }
        , passthru ? { }
        }@args:
        assert (url != "") != (urls != [ ]) || throw "fetchurl requires either `url` or `urls` to be set";
        let
          given = builtins.filter (n: args ? ${n} && args.${n} != "") [ "hash" "sha256" "sha512" ];
          theUrl = if url != "" then url else builtins.head urls;
          h =
            if given == [ ] then throw "fetchurl requires a hash for fixed-output derivation: ${theUrl}"
            else if builtins.length given > 1 then throw "multiple hashes passed to fetchurl: ${builtins.concatStringsSep ", " given}"
            else builtins.head given;
        in
        (derivation {
          name = if name != null then name else baseNameOf theUrl;
          inherit system;
          urls = if url != "" then [ url ] else urls;
          outputHash = args.${h};
          outputHashAlgo = if h == "hash" then "" else h;
          outputHashMode = if recursiveHash || executable then "recursive" else "flat";
          builder = "/bin/sh";
          args = [ "-c" "echo fetchurl stand-in cannot download >&2; exit 1" ];
        }) // passthru // { inherit meta; fetchurlArgs = args; };

      # --- runCommand / runCommandCC name env buildCommand (trivial-builders;
      # runCommand's stdenv has no C compiler, runCommandCC's has one) ---
      mkRunCommand = stdenv: name: env: buildCommand:
        mkScript name (removeAttrs env [ "passthru" "meta" ] // { inherit buildCommand; }) ''eval "$buildCommand"''
        // (env.passthru or { }) // {
          meta = env.meta or { };
          runCommandArgs = { inherit name buildCommand stdenv; env = removeAttrs env [ "passthru" "meta" ]; };
        };
      runCommand = mkRunCommand "stdenvNoCC";
      runCommandCC = mkRunCommand "stdenv";
    in
    {
      dockerTools = { inherit pullImage streamLayeredImage; };
      inherit fetchurl runCommand runCommandCC python3;
    };
    in
    {
      # lets a test see which nixpkgs a `follows` input resolved to
      standinId = "nixpkgs-standin";

      legacyPackages = builtins.listToAttrs (map (system: { name = system; value = forSystem system; })
        [ "x86_64-linux" "aarch64-linux" ]);
    };
}
