#!/usr/bin/env bash
# Builds release executables the way every measurement and `make run` use them.
#
# Usage: scripts/build-release.sh [PRODUCT...]   (default: bifrost-map bifrost-loadgen)
#
# Release builds turn off Swift's run-time exclusivity checks (-enforce-exclusivity=unchecked). The compiler still
# proves exclusivity statically wherever it can; the run-time checks cover the rest (class properties, globals,
# escaping closures) and trap on a violation. Debug builds, and so every test run, keep them: a violation in our
# code fails the tests. Without them the nodes spend about 7% less CPU per write (docs/benchmarks.md, "Exclusivity
# checks"). The flag is not in Package.swift: `unsafeFlags` would stop other packages from depending on Bifrost.
#
# Keep these flags identical everywhere: SwiftPM rebuilds everything when they change.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then set -- bifrost-map bifrost-loadgen; fi
for product in "$@"; do
    # One product per invocation: swift build keeps only the last of several --product options.
    swift build -c release -Xswiftc -enforce-exclusivity=unchecked --product "$product"
done
