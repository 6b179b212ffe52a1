# Test stand-in for cachix/nixpkgs-python (used only through
#   --override-input nixpkgs-python path:tests/nix/nixpkgs-python-standin).
#
# Like the real flake it exposes packages.<system>."X.Y.Z" and takes a
# `nixpkgs` input (the project's flake.nix makes it follow its own nixpkgs).
# Only the CPython versions named in the data contract are provided; each is a
# real but trivial derivation with the attributes nixpkgs' CPython derivations
# carry and the project may read: version, pythonVersion, executable,
# sitePackages. `nixpkgsSeen` records which nixpkgs the `follows` resolved to.
#
# It deliberately declares no flake-compat input (the real flake has one, but
# it is unused in evaluation; declaring it here would make Nix try to fetch it
# from GitHub, which is unreachable in the test environment).
{
  description = "Stand-in for cachix/nixpkgs-python (tests only)";

  # Never fetched: the project's flake.nix says
  # nixpkgs-python.inputs.nixpkgs.follows = "nixpkgs".
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      versions = [
        "2.7.12" "3.4.8" "3.5.9" "3.6.10" "3.7.9"
        "3.8.20" "3.9.25" "3.10.20" "3.11.15" "3.12.13" "3.13.14" "3.14.6"
      ];
      mkPython = version:
        let
          parts = builtins.splitVersion version;
          major = builtins.elemAt parts 0;
          minor = builtins.elemAt parts 1;
          pythonVersion = "${major}.${minor}";
        in
        (derivation {
          name = "python${if major == "2" then "" else major}-${version}";
          inherit system version;
          builder = "/bin/sh";
          args = [ "-c" "echo nixpkgs-python-standin > $out" ];
        }) // {
          inherit version pythonVersion;
          executable = "python${pythonVersion}";
          sitePackages = "lib/python${pythonVersion}/site-packages";
          nixpkgsSeen = nixpkgs.standinId or "a nixpkgs that is not the stand-in";
        };
    in
    {
      packages.${system} = builtins.listToAttrs (map (v: { name = v; value = mkPython v; }) versions);
    };
}
