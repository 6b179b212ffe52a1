# Test stand-in for cachix/nixpkgs-python (used only through
#   --override-input nixpkgs-python path:tests/nix/nixpkgs-python-standin).
#
# Like the real flake it exposes packages.<system>."X.Y.Z" for x86_64-linux and
# aarch64-linux and takes a `nixpkgs` input (the project's flake.nix makes it
# follow its own nixpkgs). Only the CPython versions named in the data contract
# are provided. Like the real one, each is built from nixpkgs' own expression
# (pkgs/development/interpreters/python/cpython/default.nix, or cpython/2.7/
# for 2.x, and passthrufun.nix): where nixpkgs lacks it, evaluation stops at a
# missing path, as with nixpkgs master and 2.7. Each is a real derivation (a
# directory, built by the stand-in nixpkgs' runCommand) with the layout of
# nixpkgs' CPython that the image relies on: bin/python<X.Y>, bin/python, and
# for 2.7 lib/python2.7/os.py and lib-dynload; its bin/python<X.Y> is a shell
# script that says it is no interpreter. It carries the attributes nixpkgs'
# CPython derivations carry and the project may read: version, pythonVersion,
# executable, sitePackages. `nixpkgsSeen` records which nixpkgs the `follows`
# resolved to.
#
# flake.lock: the real nixpkgs-python's own nixpkgs pin (the nixpkgs its binary
# cache is built against), which flake.nix compares with its own. It declares
# no flake-compat input (the real flake has one, unused in evaluation;
# declaring it would make Nix try to fetch it from GitHub).
{
  description = "Stand-in for cachix/nixpkgs-python (tests only)";

  # Never fetched: the project's flake.nix says
  # nixpkgs-python.inputs.nixpkgs.follows = "nixpkgs".
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      versions = [
        "2.7.12" "3.4.8" "3.5.9" "3.6.10" "3.7.9"
        "3.8.20" "3.9.25" "3.10.20" "3.11.15" "3.12.13" "3.13.14" "3.14.6"
      ];
      mkPython = system: version:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          parts = builtins.splitVersion version;
          major = builtins.elemAt parts 0;
          minor = builtins.elemAt parts 1;
          pythonVersion = "${major}.${minor}";
          infix = if major == "2" then "2.7/" else "";
          # what nixpkgs-python's mkPython calls: an error if nixpkgs lacks them
          expression = import "${nixpkgs}/pkgs/development/interpreters/python/cpython/${infix}default.nix";
          passthruFun = import "${nixpkgs}/pkgs/development/interpreters/python/passthrufun.nix";
        in
        assert builtins.isFunction expression && builtins.isFunction passthruFun;
        pkgs.runCommand "python${if major == "2" then "" else major}-${version}" { inherit version; } ''
          mkdir -p $out/bin $out/lib/python${pythonVersion}/lib-dynload $out/lib/python${pythonVersion}/site-packages
          printf '#!/bin/sh\necho "nixpkgs-python stand-in for CPython ${version}: not an interpreter" >&2\nexit 1\n' \
            > $out/bin/python${pythonVersion}
          chmod +x $out/bin/python${pythonVersion}
          ln -s python${pythonVersion} $out/bin/python${major}
          ln -s python${major} $out/bin/python
          echo "# stand-in" > $out/lib/python${pythonVersion}/os.py
        '' // {
          inherit version pythonVersion;
          executable = "python${pythonVersion}";
          sitePackages = "lib/python${pythonVersion}/site-packages";
          nixpkgsSeen = nixpkgs.standinId or "a nixpkgs that is not the stand-in";
        };
      forSystem = system: builtins.listToAttrs (map (v: { name = v; value = mkPython system v; }) versions);
    in
    {
      packages = { x86_64-linux = forSystem "x86_64-linux"; aarch64-linux = forSystem "aarch64-linux"; };
    };
}
