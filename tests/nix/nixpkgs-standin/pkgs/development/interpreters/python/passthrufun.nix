# Stand-in: nixpkgs-python reads this file of nixpkgs to build CPython (tests/nix/nixpkgs-python-standin).
# Its presence is what matters here; the real one is the CPython expression.
{ }: { }
